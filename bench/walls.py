#!/usr/bin/env python3
"""Whole-process wall time of two commands, run alternately, with a precise clock.

The peers' harness (../shared/bench/peers/rssmon.py) samples a running command every 0.5 s, so
its wall times are rounded up to the next half second after the process ends: a 2.1 s
translation is reported as 2.5 s. This runs each command ``--repeat`` times, alternating so
that both see the same machine, and prints every time, the medians and their ratio. Prints
figures, asserts nothing.

  python bench/walls.py --repeat 5 \\
      --a-dir /tmp/nmt-peers/runs/onmt --a "onmt_translate -model ... -beam_size 5 -batch_size 64" \\
      --b-dir /tmp/nmt-peers/runs/ours --b "nmt-translate ckpt=... search=beam ..."
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time


def wall(cmd: str, cwd: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="first command (a shell line)")
    ap.add_argument("--b", required=True, help="second command (a shell line)")
    ap.add_argument("--a-dir", default=".", help="working directory of the first command")
    ap.add_argument("--b-dir", default=".", help="working directory of the second command")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    ta, tb = [], []
    for _ in range(a.repeat):
        ta.append(wall(a.a, a.a_dir))
        tb.append(wall(a.b, a.b_dir))
    ma, mb = statistics.median(ta), statistics.median(tb)
    print(f"a: {' '.join(f'{t:.2f}' for t in ta)}  median {ma:.3f} s")
    print(f"b: {' '.join(f'{t:.2f}' for t in tb)}  median {mb:.3f} s")
    print(f"a / b: {ma / mb:.2f}")


if __name__ == "__main__":
    main()
