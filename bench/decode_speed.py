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

Latency (``--latency-runs``, on by default): one sentence (``--latency-sentence``, 10 words in the
corpus's form) translated alone again and again, in process, greedy and with each beam: p50 and p99
in ms, the decoder steps it takes, the time per step, and the same steps' matrix products replayed
alone (recorded at the dispatcher with their shapes, strides and dtypes). What a step costs beyond
its products is what runs around them: Python, dispatch, the search's bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.api import load_translator  # noqa: E402
from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.config import LengthPenalty, Precision, Quantize, SearchConfig, SearchMethod  # noqa: E402
from nmt.data.files import read_lines  # noqa: E402
from nmt.metrics import bleu  # noqa: E402
from nmt.runtime import hardware, peak_memory_mib, resolve_device  # noqa: E402
from nmt.startup import bound_kernel_caches, tune_allocator  # noqa: E402
from nmt.translator import Options, Translator  # noqa: E402


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
    ap.add_argument(
        "--latency-sentence",
        default="she told me that she would come back next week .",
        help="the sentence timed alone (in the model's input form)",
    )
    ap.add_argument("--latency-runs", type=int, default=200, help="timed translations of it (0: none)")
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
        tr = translator(
            a, device, arith, beam, batch_size=10**9, max_input_len=10**6, max_sentences=bs, workers=workers
        )
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
        used = tr.precision().dtype  # auto: what the probe chose for this batch size
        r = {
            "arithmetic": arith if arith != "auto" else f"auto:{'fp32' if used is None else 'bf16'}",
            "decoding": tr.precision().why,
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
            f"{r['arithmetic']:<11}{r['search']:<10}{bs:>6}{workers:>8}{r['sentences_per_s']:>10}{r['target_tokens_per_s']:>11}{r['seconds']:>9}"
            f"{r['peak_rss_mib']:>14}"
            + (f"{r['cuda_max_allocated_mib']:>10}" if device.type == "cuda" else "")
            + (f"{r['bleu_tok_none']:>7}" if refs is not None else ""),
            flush=True,
        )
    latencies = []
    if a.latency_runs > 0:
        print(f"\none sentence alone, {a.latency_runs} times: {a.latency_sentence!r}")
        print(
            f"{'arithmetic':<11}{'search':<10}{'p50 ms':>8}{'p99 ms':>8}{'steps':>6}{'ms/step':>9}"
            f"{'model ms/step':>14}{'products ms/step':>17}{'beyond products':>16}"
        )
        for arith in a.precisions.split(","):
            for beam in (int(b) for b in a.beams.split(",")):
                r = latency(a, device, arith, beam)
                latencies.append(r)
                print(
                    f"{r['arithmetic']:<11}{r['search']:<10}{r['p50_ms']:>8}{r['p99_ms']:>8}{r['steps']:>6}{r['ms_per_step']:>9}"
                    f"{r['model_ms_per_step']:>14}{r['products_ms_per_step']:>17}{r['beyond_products']:>16.0%}",
                    flush=True,
                )
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "ckpt": a.ckpt,
                    "device": str(device),
                    "hardware": hardware(device),
                    "results": results,
                    "latency": latencies,
                },
                indent=1,
            )
        )


def translator(
    a: argparse.Namespace, device: torch.device, arith: str, beam: int, **options: object
) -> Translator:
    """The checkpoint's translator for one setting: greedy (beam 1) or beam search with the GNMT
    penalty, in ``arith`` (fp32, bf16, auto or int8), on input in the corpus's own form."""
    cfg = SearchConfig(
        method=SearchMethod.beam if beam > 1 else SearchMethod.greedy,
        beam_size=beam,
        length_penalty=LengthPenalty.gnmt,
        alpha=a.alpha,
    )
    int8 = arith == "int8"
    opts = Options(
        processed=True, keep_segmentation=True,
        precision=Precision.fp32 if int8 else Precision(arith), quantize=Quantize.int8 if int8 else Quantize.none,
        **options,
    )  # fmt: skip
    return load_translator(a.ckpt, device, cfg, opts)[0]


# the matrix products a decoder step runs, as the dispatcher sees them
PRODUCT_OPS = {
    "mm",
    "addmm",
    "bmm",
    "baddbmm",
    "matmul",
    "linear",
    "mkldnn_rnn",
    "mkldnn_rnn_layer",
    "_mkldnn_linear_pointwise",
    "linear_dynamic",  # int8 (quantized::)
    "quantized_lstm_cell_dynamic",
}


class RecordProducts(TorchDispatchMode):
    """Records each matrix product's op and operands' (shape, stride, dtype) as it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in PRODUCT_OPS:
            form = lambda x: ("t", x.shape, x.stride(), x.dtype) if isinstance(x, torch.Tensor) else ("v", x)  # noqa: E731
            self.calls.append((func, [form(x) for x in args], {k: form(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def replay_seconds(calls: list[tuple], device: torch.device, repeats: int) -> float:
    """Seconds one pass over the recorded products takes alone (median of repeats), on operands
    of the recorded shapes, strides and dtypes. Large operands (weights) are one tensor per
    distinct form, so that a weight read at every step stays in the CPU's caches as the model's
    own does; small ones (activations, states) are the call's own."""
    made: dict[tuple, torch.Tensor] = {}

    def fresh(spec: tuple) -> torch.Tensor:
        _, shape, stride, dtype = spec
        t = torch.empty_strided(shape, stride, dtype=dtype, device=device)
        return t.normal_() if t.is_floating_point() else t.zero_()

    def operand(spec: tuple) -> object:
        if spec[0] == "v":
            return spec[1]
        if spec[1].numel() < 1 << 16:
            return fresh(spec)
        if spec not in made:
            made[spec] = fresh(spec)
        return made[spec]

    def own(spec: tuple) -> object:  # an output (out=): a tensor of its own
        if spec[0] == "v":
            return spec[1]
        return torch.empty_strided(spec[1], spec[2], dtype=spec[3], device=device)

    ops = [(f, [operand(x) for x in spec], {k: own(v) for k, v in kw.items()}) for f, spec, kw in calls]
    for f, args, kw in ops:  # each shape's first call (a oneDNN kernel is compiled) is not timed
        f(*args, **kw)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f, args, kw in ops:
            f(*args, **kw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def latency(a: argparse.Namespace, device: torch.device, arith: str, beam: int) -> dict:
    """One sentence translated alone ``a.latency_runs`` times: p50/p99, decoder steps, time per
    step, the model's share and the products' share of it."""
    tr = translator(a, device, arith, beam, workers=1)
    model = tr.model
    step_fn = model.decode_step
    counter = {"steps": 0, "seconds": 0.0}

    def counted_step(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        t0 = time.perf_counter()
        out = step_fn(*args, **kwargs)
        counter["steps"] += 1
        counter["seconds"] += time.perf_counter() - t0
        return out

    sentence = [a.latency_sentence]
    for _ in range(5):  # warm-up
        tr.translate(sentence)
    model.decode_step = counted_step  # an instance attribute: only this model, only here
    times = []
    for _ in range(a.latency_runs):
        t0 = time.perf_counter()
        tr.translate(sentence)
        times.append(time.perf_counter() - t0)
    steps = counter["steps"] / a.latency_runs
    model_s = counter["seconds"] / a.latency_runs
    del model.decode_step
    rec = RecordProducts()
    with rec:  # the translation's products (the encoder's too), as decoding runs them
        tr.translate(sentence)
    try:
        products_s = replay_seconds(rec.calls, device, 20)
    except RuntimeError:  # an op that does not run on made-up operands (int8's packed cells)
        products_s = float("nan")
    p50 = statistics.median(times)
    per_step = p50 / max(steps, 1)
    used = tr.precision().dtype
    return {
        "arithmetic": arith if arith != "auto" else f"auto:{'fp32' if used is None else 'bf16'}",
        "search": "greedy" if beam == 1 else f"beam{beam}",
        "sentence": a.latency_sentence,
        "runs": a.latency_runs,
        "p50_ms": round(1000 * p50, 2),
        "p99_ms": round(1000 * sorted(times)[min(len(times) - 1, int(0.99 * len(times)))], 2),
        "steps": round(steps, 1),
        "ms_per_step": round(1000 * per_step, 3),
        "model_ms_per_step": round(1000 * model_s / max(steps, 1), 3),
        "products_ms_per_step": round(1000 * products_s / max(steps, 1), 3),
        "beyond_products": round(1 - products_s / p50, 3),
    }


if __name__ == "__main__":
    with one_line_errors("bench/decode_speed.py"):
        main()
