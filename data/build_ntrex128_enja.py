#!/usr/bin/env python3
"""Build ntrex128_enja from the NTREX-128 files (standard library only).

Usage:
    python3 data/build_ntrex128_enja.py SRC REF DOCIDS OUTDIR

SRC, REF, DOCIDS are NTREX-128/newstest2019-src.eng.txt, NTREX-128/newstest2019-ref.jpn.txt and
DOCUMENT_IDS.tsv of MicrosoftTranslator/NTREX. The originals end their lines with CRLF; one
trailing "\\r" is removed from every line and nothing else is changed. OUTDIR gets test.en,
test.ja and test.docids.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class BuildError(Exception):
    pass


def crlf_to_lf(data: bytes) -> bytes:
    """Every line ending in LF, with one trailing CR per line removed."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((ln[:-1] if ln.endswith(b"\r") else ln) + b"\n" for ln in lines)


def build(src: Path, ref: Path, docids: Path, outdir: Path) -> int:
    outdir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for path, out in ((src, "test.en"), (ref, "test.ja"), (docids, "test.docids")):
        body = crlf_to_lf(path.read_bytes())
        (outdir / out).write_bytes(body)
        counts[out] = body.count(b"\n")
    if len(set(counts.values())) != 1:
        raise BuildError(f"line counts differ: {counts}")
    n = counts["test.en"]
    print(f"{outdir}: test.en / test.ja / test.docids, {n:,} lines each")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("ref", type=Path)
    ap.add_argument("docids", type=Path)
    ap.add_argument("outdir", type=Path)
    args = ap.parse_args(argv)
    try:
        build(args.src, args.ref, args.docids, args.outdir)
    except (BuildError, OSError) as e:
        print(f"build_ntrex128_enja: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
