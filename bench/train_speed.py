#!/usr/bin/env python3
"""Training speed of nmt's own step: target tokens/s, step time, peak memory, optional profile.

Runs the real training step (autocast forward, label-smoothed loss, backward, clipping, Adam) on
batches of the named model size, prints figures, and never asserts anything.

  python bench/train_speed.py --size small                      # synthetic 64 x 16 batches, like the peers' floor.py
  python bench/train_speed.py --size small --data runs/small_parallel_enja/data --batch-tokens 4096
  python bench/train_speed.py --size base --device cuda --precision bf16
  python bench/train_speed.py --size small --profile            # where the time goes (torch.profiler)

Sizes (issue 4): small = emb 256, BiLSTM 2x128 (2 layers), decoder 2x256, Luong general, input
feeding, vocab 8k; base = emb 512, BiLSTM 2x512, decoder 2x1024, vocab 16k.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.config import Attention, ModelConfig, Precision, TrainConfig  # noqa: E402
from nmt.data.batching import Batch, batch_indices, make_batch  # noqa: E402
from nmt.data.corpus import load_prepared  # noqa: E402
from nmt.model.loss import sequence_loss  # noqa: E402
from nmt.model.seq2seq import build_model, count_parameters  # noqa: E402
from nmt.runtime import autocast, autocast_dtype, hardware, peak_memory_mib, resolve_device  # noqa: E402
from nmt.startup import KERNEL_CACHE_TRAIN, bound_kernel_caches, tune_allocator  # noqa: E402
from nmt.training.optim import build_optimizer, clipped_step  # noqa: E402

SIZES = {
    "small": dict(emb_dim=256, enc_hidden=128, enc_layers=2, dec_hidden=256, dec_layers=2, vocab=8000),
    "base": dict(emb_dim=512, enc_hidden=512, enc_layers=2, dec_hidden=1024, dec_layers=2, vocab=16000),
}


def model_config(size: str, attention: str, input_feeding: bool) -> tuple[ModelConfig, int]:
    s = dict(SIZES[size])
    vocab = s.pop("vocab")
    return ModelConfig(
        **s, attention=Attention(attention), input_feeding=input_feeding, dropout=0.2, emb_dropout=0.2
    ), vocab


def synthetic_batches(
    n: int, batch: int, src_len: int, tgt_len: int, vocab: int, seed: int = 0
) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src = torch.randint(4, vocab, (batch, src_len), generator=g)
        tgt = torch.randint(4, vocab, (batch, tgt_len + 1), generator=g)
        out.append(
            Batch(
                src,
                torch.full((batch,), src_len),
                tgt[:, :-1].contiguous(),
                tgt[:, 1:].contiguous(),
                np.arange(batch),
                batch * tgt_len,
            )
        )
    return out


def real_batches(
    data_dir: Path, n: int, batch_size: int, by_tokens: bool, seed: int = 0
) -> tuple[list[Batch], int, int]:
    p = load_prepared(data_dir)
    tr = p.splits["train"]
    idx = batch_indices(tr.src_lens, tr.tgt_lens, batch_size, by_tokens, np.random.default_rng(seed))
    return [make_batch(tr, i) for i in idx[:n]], len(p.src_tok), len(p.tgt_tok)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--attention", default="luong_general", choices=[a.value for a in Attention])
    ap.add_argument("--no-input-feeding", action="store_true")
    ap.add_argument(
        "--data", type=Path, help="prepared data dir (runs/<name>/data); default: synthetic batches"
    )
    ap.add_argument(
        "--batch",
        type=int,
        default=64,
        help="sentences per batch (synthetic, or real with --batch-type sents)",
    )
    ap.add_argument("--batch-tokens", type=int, default=0, help="token budget per batch (real data)")
    ap.add_argument("--src-len", type=int, default=16)
    ap.add_argument("--tgt-len", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", choices=[p.value for p in Precision])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table of one step")
    ap.add_argument("--json", type=Path, help="also write the figures here")

    ap.add_argument("--no-tune-allocator", action="store_true")
    ap.add_argument(
        "--unfused-loss", action="store_true", help="the old step: full logits, then the loss on them"
    )
    ap.add_argument(
        "--autograd-bptt",
        action="store_true",
        help="autograd (nn.LSTM in the encoder, the step loop in the decoder) instead of nmt.model.bilstm "
        "and nmt.model.bptt (train.explicit_bptt=false)",
    )
    a = ap.parse_args()
    if not a.no_tune_allocator:
        tune_allocator()
    # as nmt-train does; ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 LRU_CACHE_CAPACITY=1024: PyTorch's defaults
    bound_kernel_caches(KERNEL_CACHE_TRAIN)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = resolve_device(a.device)
    amp = autocast_dtype(Precision(a.precision), device)
    cfg, vocab = model_config(a.size, a.attention, not a.no_input_feeding)
    n = a.warmup + a.steps
    if a.data:
        by_tokens = a.batch_tokens > 0
        batches, sv, tv = real_batches(a.data, n, a.batch_tokens or a.batch, by_tokens)
    else:
        batches, sv, tv = synthetic_batches(n, a.batch, a.src_len, a.tgt_len, vocab), vocab, vocab
    model = build_model(cfg, sv, tv).to(device).train()
    model.encoder.explicit_bptt = model.decoder.explicit_bptt = not a.autograd_bptt
    opt = build_optimizer(model.parameters(), TrainConfig(), device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    def step(b: Batch) -> None:
        b = b.to(device)
        with autocast(device, amp):
            if a.unfused_loss:
                loss, _ = sequence_loss(model(b.src, b.src_lens, b.tgt_in), b.tgt_out, 0.1)
            else:
                loss, _ = model(b.src, b.src_lens, b.tgt_in, b.tgt_out, 0.1)
        scaler.scale(loss / b.n_tgt_tokens).backward()
        clipped_step(opt, scaler, 5.0)  # as the trainer clips and steps (a float: it syncs too)
        opt.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for b in batches[: a.warmup]:
        step(b)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    times, tokens, sents = [], 0, 0
    for b in batches[a.warmup :]:
        t0 = time.perf_counter()
        step(b)
        sync()
        times.append(time.perf_counter() - t0)
        tokens += b.n_tgt_tokens
        sents += len(b)
    total = sum(times)
    res = {
        "size": a.size,
        "attention": a.attention,
        "input_feeding": not a.no_input_feeding,
        "data": str(a.data) if a.data else f"synthetic {a.batch}x{a.src_len}/{a.tgt_len}",
        "batch": f"{a.batch_tokens} tokens" if a.batch_tokens else f"{a.batch} sentences",
        "parameters": count_parameters(model),
        "device": str(device),
        "precision": "fp32" if amp is None else str(amp),
        "bptt": "autograd" if a.autograd_bptt else "explicit where it applies",
        "hardware": hardware(device),
        "onednn_cache": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"),
        "steps": len(times),
        "target_tokens_per_s": round(tokens / total, 1),
        "sentences_per_s": round(sents / total, 1),
        "step_ms_median": round(1000 * statistics.median(times), 1),
        "step_ms_min": round(1000 * min(times), 1),
        "peak_rss_mib": round(peak_memory_mib(torch.device("cpu")), 1),
    }
    if device.type == "cuda":
        res["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    for k, v in res.items():
        print(f"{k:>22}: {v}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            for b in batches[a.warmup : a.warmup + 3]:
                step(b)
            sync()
        key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=25, max_name_column_width=40))
    assert math.isfinite(total)


if __name__ == "__main__":
    with one_line_errors("bench/train_speed.py"):
        main()
