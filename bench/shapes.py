#!/usr/bin/env python3
"""Batch shapes of an epoch: how many distinct (sentences, source, target) shapes a prepared corpus
makes at each length multiple, what the padding costs, and how long finding the bound takes.

Every distinct batch shape costs a set of oneDNN kernels under bf16 on a CPU (nmt.startup); the
trainer pads lengths to the smallest multiple that keeps an epoch within ``train.max_shapes``
(nmt.data.batching.bounded_multiple). This prints, for each multiple: batches, distinct shapes,
real target tokens per batch (what padding takes from a token budget), the share of padded
target positions, and the seconds to batch the epoch and count its shapes. Lengths only: nothing
is trained. Never asserts.

  python bench/shapes.py --data runs/en_ja_kyoto_cpu/data
  python bench/shapes.py --data runs/en_ja_kyoto_cpu/data --pairs 19240998   # the lengths repeated
  python bench/shapes.py --data runs/peers/data --batch 64 --sentences
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.data.batching import SHAPE_MULTIPLES, batch_indices, batch_maxima, batch_shapes, bounded_multiple  # noqa: E402
from nmt.data.corpus import load_prepared  # noqa: E402
from nmt.startup import TRAIN_SHAPES  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared data dir (<run_dir>/data)")
    ap.add_argument("--batch", type=int, default=4096, help="tokens per batch (sentences with --sentences)")
    ap.add_argument("--sentences", action="store_true", help="batches of --batch sentences")
    ap.add_argument("--pairs", type=int, default=0, help="repeat the training lengths to this many pairs")
    ap.add_argument("--max-shapes", type=int, default=TRAIN_SHAPES)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    train = load_prepared(a.data).splits["train"]
    src, tgt = np.asarray(train.src_lens), np.asarray(train.tgt_lens)
    if a.pairs:
        reps = -(-a.pairs // max(len(src), 1))
        src, tgt = np.tile(src, reps)[: a.pairs], np.tile(tgt, reps)[: a.pairs]
    by_tokens = not a.sentences

    def cut(m: int) -> list[np.ndarray]:
        return batch_indices(src, tgt, a.batch, by_tokens, np.random.default_rng(a.seed), multiple=m)

    unit = "sentences" if a.sentences else "tokens"
    print(f"{a.data}: {len(src):,} training pairs, batches of {a.batch} {unit}")
    print(
        f"{'multiple':>8}{'batches':>10}{'shapes':>8}{'real tgt/batch':>16}{'tgt padding':>13}{'batch s':>9}{'count s':>9}"
    )
    base = None
    for m in SHAPE_MULTIPLES:
        t0 = time.perf_counter()
        batches = cut(m)
        t1 = time.perf_counter()
        shapes = batch_shapes(src, tgt, batches, m)
        t2 = time.perf_counter()
        real = int(tgt.astype(np.int64).sum()) + len(tgt)  # target tokens with EOS
        rows, _, longest = batch_maxima(src, tgt, batches)
        width = -(-(longest + 1) // m) * m  # (batches,) each batch's padded target length
        padded = int((rows * width).sum())
        per_batch = real / len(batches)
        base = base or per_batch
        print(
            f"{m:>8}{len(batches):>10,}{len(shapes):>8}{per_batch:>11,.0f} ({per_batch / base - 1:+.1%})"
            f"{1 - real / padded:>12.1%}{t1 - t0:>9.2f}{t2 - t1:>9.2f}"
        )
    t0 = time.perf_counter()
    m, n = bounded_multiple(src, tgt, a.max_shapes, cut)
    print(
        f"bounded_multiple(max_shapes={a.max_shapes}): multiple {m}, {n} shapes, {time.perf_counter() - t0:.2f} s"
    )


if __name__ == "__main__":
    with one_line_errors("bench/shapes.py"):
        main()
