#!/usr/bin/env python3
"""Build wmt24_generaltest_enja from the WMT24 en-ja txt files (standard library only).

Usage:
    python3 data/build_wmt24_generaltest_enja.py SRC REF DOCS OUTDIR

SRC, REF, DOCS are txt/sources/en-ja.txt, txt/references/en-ja.refA.txt and
txt/documents/en-ja.docs of wmt-conference/wmt24-news-systems. The first line of each is a
contamination canary ("CANARY GUID ..." / "canary<TAB>canary"), not a translation pair: it is
removed, and nothing else is changed. OUTDIR gets test.en, test.ja and test.docids
("domain<TAB>doc id").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class BuildError(Exception):
    pass


def drop_canary(data: bytes, name: str) -> bytes:
    """The file's bytes without its first line, which must be the canary."""
    first, sep, rest = data.partition(b"\n")
    if not sep or b"canary" not in first.lower():
        raise BuildError(f"{name}: first line is not the WMT24 canary: {first[:80]!r}")
    return rest


def build(src: Path, ref: Path, docs: Path, outdir: Path) -> int:
    outdir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for path, out in ((src, "test.en"), (ref, "test.ja"), (docs, "test.docids")):
        body = drop_canary(path.read_bytes(), str(path))
        (outdir / out).write_bytes(body)
        counts[out] = body.count(b"\n")
    if len(set(counts.values())) != 1:
        raise BuildError(f"line counts differ after removing the canary: {counts}")
    n = counts["test.en"]
    print(f"{outdir}: test.en / test.ja / test.docids, {n:,} lines each")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("ref", type=Path)
    ap.add_argument("docs", type=Path)
    ap.add_argument("outdir", type=Path)
    args = ap.parse_args(argv)
    try:
        build(args.src, args.ref, args.docs, args.outdir)
    except (BuildError, OSError) as e:
        print(f"build_wmt24_generaltest_enja: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
