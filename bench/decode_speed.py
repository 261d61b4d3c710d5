#!/usr/bin/env python3
"""Decoding speed: sentences/s and target pieces/s for greedy and beam search at batch sizes 1 and 64.

Loads a checkpoint once, translates a test file with each (search, batch size) setting, and prints
a table (and JSON with --json); prints figures only, never asserts. Peak memory: the process's max
RSS, and CUDA max allocated on a GPU. Model loading is not timed; a short warm-up precedes each
setting. Batches hold at most N sentences (``max_sentences``), sorted by length, as in nmt-translate.

  python bench/decode_speed.py --ckpt runs/en_ja_small/checkpoints/best.pt \
      --input ../shared/data/small_parallel_enja/test.en
  python bench/decode_speed.py --ckpt ... --device cuda --batches 1,64,256
  python bench/decode_speed.py --ckpt ... --precisions fp32,bf16,int8 --ref ../shared/data/small_parallel_enja/test.ja
  python bench/decode_speed.py --ckpt ... --workers 1,0     # one batch at a time against auto workers

``--precisions``: fp32, bf16 (autocast) and int8 (dynamically quantized linear layers and LSTMs,
CPU), each a model of its own; with ``--ref`` each setting's BLEU (``-tok none`` on the segmented
output, the corpus's form) is printed too, to see what a faster arithmetic costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.api import load_translator  # noqa: E402
from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.config import LengthPenalty, Precision, Quantize, SearchConfig, SearchMethod  # noqa: E402
from nmt.data.files import read_lines  # noqa: E402
from nmt.metrics import bleu  # noqa: E402
from nmt.runtime import hardware, peak_memory_mib, resolve_device  # noqa: E402
from nmt.startup import bound_kernel_caches, tune_allocator  # noqa: E402
from nmt.translator import Options  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", default="64,1", help="sentences per batch, comma-separated")
    ap.add_argument("--beams", default="1,5", help="1 = greedy; comma-separated")
    ap.add_argument("--alpha", type=float, default=0.6, help="GNMT length penalty for beam search")
    ap.add_argument("--max-sentences", type=int, default=0, help="use only the first N input lines")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--workers", default="0", help="decoding workers (0: auto, 1: one batch at a time); comma-separated"
    )
    ap.add_argument("--precisions", default="auto", help="auto, fp32, bf16, int8; comma-separated")
    ap.add_argument("--ref", type=Path, help="reference translations: print BLEU (-tok none) too")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    tune_allocator()
    bound_kernel_caches()  # as nmt-translate does; ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 LRU_CACHE_CAPACITY=1024: PyTorch's defaults
    if a.threads:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    lines = read_lines(a.input)
    if a.max_sentences:
        lines = lines[: a.max_sentences]
    print(f"{a.ckpt} on {device} ({hardware(device)}); {len(lines)} sentences from {a.input}")
    print(
        f"{'arithmetic':<11}{'search':<10}{'batch':>6}{'workers':>8}{'sent/s':>10}{'tgt tok/s':>11}{'seconds':>9}{'peak RSS MiB':>14}"
        + (f"{'CUDA MiB':>10}" if device.type == "cuda" else "")
        + (f"{'BLEU':>7}" if a.ref else "")
    )
    refs = read_lines(a.ref)[: len(lines)] if a.ref else None
    results = []
    settings = [
        (p, beam, bs, w)
        for p in a.precisions.split(",")
        for beam in (int(b) for b in a.beams.split(","))
        for bs in (int(b) for b in a.batches.split(","))
        for w in (int(x) for x in a.workers.split(","))
    ]
    for arith, beam, bs, workers in settings:
        cfg = SearchConfig(
            method=SearchMethod.beam if beam > 1 else SearchMethod.greedy,
            beam_size=beam,
            length_penalty=LengthPenalty.gnmt,
            alpha=a.alpha,
        )
        int8 = arith == "int8"
        options = Options(
            batch_size=10**9, max_input_len=10**6, max_sentences=bs, processed=True, keep_segmentation=True,
            precision=Precision.fp32 if int8 else Precision(arith), quantize=Quantize.int8 if int8 else Quantize.none,
            workers=workers,
        )  # fmt: skip
        tr, _ = load_translator(a.ckpt, device, cfg, options)
        tr.translate(lines[: min(len(lines), 2 * bs, 64)])  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = tr.translate_detailed(lines)
        if device.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        pieces = sum(len(tr.tgt_tok.encode([t.text])[0]) + 1 for t in out)
        r = {
            "arithmetic": arith,
            "search": "greedy" if beam == 1 else f"beam{beam}",
            "batch": bs,
            "workers": workers,
            "sentences": len(lines),
            "sentences_per_s": round(len(lines) / secs, 1),
            "target_tokens_per_s": round(pieces / secs, 1),
            "seconds": round(secs, 2),
            "peak_rss_mib": round(peak_memory_mib(torch.device("cpu")), 1),
        }
        if device.type == "cuda":
            r["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if refs is not None:
            r["bleu_tok_none"] = round(bleu([t.text for t in out], refs, "none").score, 2)
        results.append(r)
        print(
            f"{arith:<11}{r['search']:<10}{bs:>6}{workers:>8}{r['sentences_per_s']:>10}{r['target_tokens_per_s']:>11}{r['seconds']:>9}"
            f"{r['peak_rss_mib']:>14}"
            + (f"{r['cuda_max_allocated_mib']:>10}" if device.type == "cuda" else "")
            + (f"{r['bleu_tok_none']:>7}" if refs is not None else ""),
            flush=True,
        )
    if a.json:
        a.json.write_text(
            json.dumps(
                {"ckpt": a.ckpt, "device": str(device), "hardware": hardware(device), "results": results},
                indent=1,
            )
        )


if __name__ == "__main__":
    with one_line_errors("bench/decode_speed.py"):
        main()
