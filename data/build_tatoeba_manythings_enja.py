#!/usr/bin/env python3
"""manythings.org's Tatoeba export (jpn.txt: "English<TAB>Japanese" lines) to train.en / train.ja.

    python data/build_tatoeba_manythings_enja.py jpn.txt OUT
Each line is split at its first tab and both sides stripped of surrounding whitespace; no line is
dropped. Standard library only. data/download.sh tatoeba_manythings_enja runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jpn_txt", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    en, ja = [], []
    for n, line in enumerate(a.jpn_txt.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise SystemExit(f"{a.jpn_txt}:{n}: no tab")
        e, j = line.split("\t", 1)
        en.append(e.strip())
        ja.append(j.split("\t")[0].strip())
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "train.en").write_text("".join(s + "\n" for s in en), encoding="utf-8")
    (a.out / "train.ja").write_text("".join(s + "\n" for s in ja), encoding="utf-8")
    print(f"{len(en)} pairs")


if __name__ == "__main__":
    main()
