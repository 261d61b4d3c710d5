#!/usr/bin/env python3
"""Start-up of a one-shot nmt-translate: wall time of a one-line translation against ``import torch``.

Runs, in fresh processes and alternating so that all see the same machine, (a) ``python -c
"import torch"``, (b) the same ending with ``os._exit(0)`` and (c) ``nmt-translate ckpt=...
input=<one line>`` (greedy), ``--repeat`` times each, and prints the medians and the differences:
the start-up nmt adds beyond importing torch (the search of one line is a few milliseconds of it).
nmt-translate ends with ``os._exit`` (no interpreter teardown, ~0.25 s after ``import torch``), so
(c) - (b) is the fair figure; (c) - (a) is what a user sees against a plain ``import torch``.
Prints figures, asserts nothing.

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
        torch_exit_cmd = [a.python, "-c", "import os, torch; os._exit(0)"]
        nmt_cmd = [
            a.python, "-m", "nmt.cli.translate", f"ckpt={a.ckpt}", f"input={src}",
            f"output={Path(tmp) / 'one.ja'}", "search=greedy",
        ] + (["processed=true"] if a.processed else [])  # fmt: skip
        wall(torch_cmd), wall(nmt_cmd)  # warm the page cache
        t_torch, t_exit, t_nmt = [], [], []
        for _ in range(a.repeat):
            t_torch.append(wall(torch_cmd))
            t_exit.append(wall(torch_exit_cmd))
            t_nmt.append(wall(nmt_cmd))
    mt, me, mn = statistics.median(t_torch), statistics.median(t_exit), statistics.median(t_nmt)
    print(f"{'python':>36}: {a.python}")
    print(f"{'import torch, median s':>36}: {mt:.3f}  (min {min(t_torch):.3f})")
    print(f"{'import torch; os._exit, median s':>36}: {me:.3f}  (min {min(t_exit):.3f})")
    print(f"{'one-line translate, median s':>36}: {mn:.3f}  (min {min(t_nmt):.3f})")
    print(f"{'beyond import torch; os._exit, s':>36}: {mn - me:.3f}")
    print(f"{'beyond import torch, s':>36}: {mn - mt:.3f}")


if __name__ == "__main__":
    main()
