#!/usr/bin/env python3
"""Write wmt21_newstest_enja/test.docids from the WMT21 en-ja XML (standard library only).

Usage:
    python3 data/build_wmt21_newstest_enja.py XML SRC_TXT OUT_DOCIDS

XML is xml/newstest2021.en-ja.all.xml of wmt-conference/wmt21-news-systems; SRC_TXT is the plain
source (txt/sources/newstest2021.en-ja.src.en, saved as test.en). OUT_DOCIDS gets the id of the
<doc> of every source <seg>, one per line, in document order. The source segments of the XML
must match SRC_TXT line for line (same count; text compared as a check).
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


class BuildError(Exception):
    pass


def doc_segments(xml_bytes: bytes) -> list[tuple[str, str]]:
    """(doc id, source segment text) for every <seg> under each <doc>'s <src>, in order."""
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as e:
        raise BuildError(f"not well-formed XML ({e})") from None
    out = []
    for doc in root.iter("doc"):
        doc_id = doc.get("id")
        if not doc_id:
            raise BuildError("a <doc> without an id attribute")
        src = doc.find("src")
        if src is None:
            raise BuildError(f"<doc id={doc_id!r}> has no <src>")
        for seg in src.iter("seg"):
            out.append((doc_id, "".join(seg.itertext())))
    if not out:
        raise BuildError("no source segments found")
    return out


def build(xml_path: Path, src_path: Path, out_path: Path) -> int:
    segs = doc_segments(xml_path.read_bytes())
    src_lines = src_path.read_text(encoding="utf-8").split("\n")
    if src_lines and src_lines[-1] == "":
        src_lines.pop()
    if len(segs) != len(src_lines):
        raise BuildError(
            f"{xml_path} has {len(segs)} source segments but {src_path} has {len(src_lines)} lines"
        )
    differ = [i + 1 for i, ((_, s), t) in enumerate(zip(segs, src_lines)) if s.strip() != t.strip()]
    if differ:
        print(
            f"warning: {len(differ)} XML segment(s) differ from {src_path} (first at line {differ[0]})",
            file=sys.stderr,
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        for doc_id, _ in segs:
            f.write(doc_id + "\n")
    n_docs = len({d for d, _ in segs})
    print(f"{out_path}: {len(segs):,} lines, {n_docs} documents")
    return len(segs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("xml", type=Path)
    ap.add_argument("src_txt", type=Path)
    ap.add_argument("out_docids", type=Path)
    args = ap.parse_args(argv)
    try:
        build(args.xml, args.src_txt, args.out_docids)
    except (BuildError, OSError) as e:
        print(f"build_wmt21_newstest_enja: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
