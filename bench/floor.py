#!/usr/bin/env python3
"""The matrix-product floor of a training step: its GEMMs alone, as bare torch ops on the same shapes.

A training step of the attentional LSTM cannot be faster than the matrix products it must do:
encoder input projections and recurrences, the decoder's per-step products (input feeding makes
them sequential), attention, the output projection, and for each of those the two products of the
backward pass (input gradient and weight gradient). This script lists them for a model size and
batch shape, times each distinct shape with bare ``torch.mm`` / ``torch.bmm`` (median of repeats),
and prints the sum: the step time nmt would have if everything but the GEMMs were free. Compare
it with ``bench/train_speed.py`` on the same shape to get the fraction of the floor reached.

  python bench/floor.py --size small --batch 64 --src-len 16 --tgt-len 16
  python bench/floor.py --size base --device cuda --dtype bf16 --batch 128 --src-len 30 --tgt-len 34
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from train_speed import SIZES  # noqa: E402

from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.runtime import hardware, resolve_device  # noqa: E402


def gemms(size: str, B: int, S: int, T: int, input_feeding: bool = True) -> Counter:
    """(kind, shape) -> count for one forward + backward of the model. kind mm: (m, k, n); bmm: (b, m, k, n)."""
    c = dict(SIZES[size])
    E, He, Le, Hd, Ld, V = (
        c["emb_dim"],
        c["enc_hidden"],
        c["enc_layers"],
        c["dec_hidden"],
        c["dec_layers"],
        c["vocab"],
    )
    g: Counter = Counter()

    def mm(m: int, k: int, n: int, times: int = 1) -> None:  # forward y = x W plus dX and dW
        g[("mm", (m, k, n))] += times
        g[("mm", (m, n, k))] += times  # dX = dY W^T
        g[("mm", (k, m, n))] += times  # dW = X^T dY

    def bmm(b: int, m: int, k: int, n: int, times: int = 1) -> None:
        g[("bmm", (b, m, k, n))] += times
        g[("bmm", (b, m, n, k))] += times
        g[("bmm", (b, k, m, n))] += times

    for layer in range(Le):  # bidirectional encoder: per direction, input projection + recurrence
        inp = E if layer == 0 else 2 * He
        mm(B * S, inp, 4 * He, times=2)
        mm(B, He, 4 * He, times=2 * S)
    mm(B * S, 2 * He, Hd)  # attention keys, Luong general (W_a h_j), once per batch
    mm(B, 2 * He, Ld * Hd, times=2)  # bridge (h and c)
    mm(B * T, E, 4 * Hd)  # decoder: embeddings' part of layer 1, all steps at once
    step_in = (Hd if input_feeding else 0) + Hd
    mm(B, step_in, 4 * Hd, times=T)  # layer 1: [feed; h] per step
    mm(B, 2 * Hd, 4 * Hd, times=T * (Ld - 1))  # upper layers: [below; h] per step
    bmm(B, 1, Hd, S, times=T)  # scores q . keys
    bmm(B, 1, S, 2 * He, times=T)  # context
    mm(B, Hd + 2 * He, Hd, times=T)  # attentional vector W_c [h; c]
    mm(B * T, Hd, V)  # output projection
    return g


def time_op(kind: str, shape: tuple, device: torch.device, dtype: torch.dtype, reps: int) -> float:
    if kind == "mm":
        m, k, n = shape
        a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
        f = lambda: torch.mm(a, b)  # noqa: E731
    else:
        bt, m, k, n = shape
        a, b = (
            torch.randn(bt, m, k, device=device, dtype=dtype),
            torch.randn(bt, k, n, device=device, dtype=dtype),
        )
        f = lambda: torch.bmm(a, b)  # noqa: E731
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        f()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--src-len", type=int, default=16)
    ap.add_argument("--tgt-len", type=int, default=16, help="target pieces incl. EOS (decoder steps)")
    ap.add_argument("--no-input-feeding", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = resolve_device(a.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    g = gemms(a.size, a.batch, a.src_len, a.tgt_len, not a.no_input_feeding)
    rows, total, flops = [], 0.0, 0
    for (kind, shape), count in g.items():
        t = time_op(kind, shape, device, dtype, a.reps)
        f = 2 * (
            shape[0] * shape[1] * shape[2] if kind == "mm" else shape[0] * shape[1] * shape[2] * shape[3]
        )
        rows.append((t * count, kind, shape, count, t, f / t / 1e9))
        total += t * count
        flops += f * count
    tokens = a.batch * a.tgt_len
    print(
        f"GEMM floor of one training step: size {a.size}, batch {a.batch} x src {a.src_len} / tgt {a.tgt_len}, "
        f"{a.dtype} on {device} ({hardware(device)})"
    )
    print(f"{'kind':<5}{'shape':>24}{'count':>7}{'ms each':>10}{'ms total':>10}{'GFLOP/s':>10}")
    for tt, kind, shape, count, t, gf in sorted(rows, reverse=True):
        print(f"{kind:<5}{str(shape):>24}{count:>7}{1000 * t:>10.3f}{1000 * tt:>10.1f}{gf:>10.1f}")
    print(
        f"floor: {1000 * total:.1f} ms per step = {tokens / total:,.0f} target tokens/s "
        f"({flops / 1e9:.1f} GFLOP at {flops / total / 1e9:.0f} GFLOP/s)"
    )


if __name__ == "__main__":
    with one_line_errors("bench/floor.py"):
        main()
