#!/usr/bin/env python3
"""Start-up of a one-shot nmt-translate: wall time of a one-line translation against ``import torch``.

Runs, in fresh processes and alternating so that both see the same machine, (a) ``python -c
"import torch"`` and (b) ``nmt-translate ckpt=... input=<one line>`` (greedy), ``--repeat`` times
each, and prints the medians and their difference: the start-up nmt adds beyond importing torch
(the search of one line is a few milliseconds of it). Prints figures, asserts nothing.

  python bench/startup.py --ckpt runs/en_ja_small/checkpoints/best.pt
  python bench/startup.py --ckpt ... --python /tmp/before/.venv/bin/python   # another checkout
  python bench/startup.py --ckpt ... --processed     # without text processing (no Moses import)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose nmt is measured")
    ap.add_argument("--line", default="I like green tea.")
    ap.add_argument(
        "--processed",
        action="store_true",
        help="input already in the corpus's form (processed=true), as the peers' harness runs it",
    )
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "one.en"
        src.write_text(a.line + "\n", encoding="utf-8")
        torch_cmd = [a.python, "-c", "import torch"]
        nmt_cmd = [
            a.python, "-m", "nmt.cli.translate", f"ckpt={a.ckpt}", f"input={src}",
            f"output={Path(tmp) / 'one.ja'}", "search=greedy",
        ] + (["processed=true"] if a.processed else [])  # fmt: skip
        wall(torch_cmd), wall(nmt_cmd)  # warm the page cache
        t_torch, t_nmt = [], []
        for _ in range(a.repeat):
            t_torch.append(wall(torch_cmd))
            t_nmt.append(wall(nmt_cmd))
    mt, mn = statistics.median(t_torch), statistics.median(t_nmt)
    print(f"{'python':>28}: {a.python}")
    print(f"{'import torch, median s':>28}: {mt:.3f}  (min {min(t_torch):.3f})")
    print(f"{'one-line translate, median s':>28}: {mn:.3f}  (min {min(t_nmt):.3f})")
    print(f"{'beyond import torch, s':>28}: {mn - mt:.3f}")


if __name__ == "__main__":
    main()
