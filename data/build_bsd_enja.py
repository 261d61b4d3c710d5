#!/usr/bin/env python3
"""Build bsd_enja from the Business Scene Dialogue JSON files (standard library only).

Usage:
    python3 data/build_bsd_enja.py DEV_JSON TEST_JSON OUTDIR

DEV_JSON and TEST_JSON are dev.json and test.json of tsuruoka-lab/BSD: a list of scenarios, each
with "id", "tag", "original_language" and a "conversation" list of turns ("no", "en_sentence",
"ja_sentence", ...). Every turn is written in file order; in a sentence each run of tab / CR /
LF becomes one space and surrounding whitespace is stripped. OUTDIR gets {dev,test}.{en,ja} and
{dev,test}.ids ("scenario id<TAB>turn no<TAB>scene tag<TAB>original language").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

WHITESPACE_RUN = re.compile(r"[\t\r\n]+")


class BuildError(Exception):
    pass


def clean(text: str) -> str:
    return WHITESPACE_RUN.sub(" ", text).strip()


def field(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise BuildError(f"{where}: missing {key!r}")
    return obj[key]


def turns(scenarios: list, name: str) -> list[tuple[str, str, str]]:
    """(en, ja, ids line) for every conversation turn, in file order."""
    if not isinstance(scenarios, list):
        raise BuildError(f"{name}: expected a list of scenarios")
    out = []
    for i, sc in enumerate(scenarios):
        where = f"{name}: scenario {i + 1}"
        sid = str(field(sc, "id", where))
        tag = clean(str(field(sc, "tag", where)))
        orig = clean(str(field(sc, "original_language", where)))
        for turn in field(sc, "conversation", where):
            no = field(turn, "no", f"{where} ({sid})")
            en = clean(str(field(turn, "en_sentence", f"{sid} turn {no}") or ""))
            ja = clean(str(field(turn, "ja_sentence", f"{sid} turn {no}") or ""))
            if not en or not ja:
                raise BuildError(f"{name}: {sid} turn {no} has an empty side")
            out.append((en, ja, f"{sid}\t{no}\t{tag}\t{orig}"))
    return out


def build(dev_json: Path, test_json: Path, outdir: Path) -> dict[str, int]:
    outdir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, path in (("dev", dev_json), ("test", test_json)):
        try:
            scenarios = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise BuildError(f"{path}: invalid JSON ({e})") from None
        rows = turns(scenarios, str(path))
        for ext, col in (("en", 0), ("ja", 1), ("ids", 2)):
            with open(outdir / f"{split}.{ext}", "w", encoding="utf-8", newline="\n") as f:
                for row in rows:
                    f.write(row[col] + "\n")
        counts[split] = len(rows)
        print(f"{split}: {len(scenarios)} scenarios, {len(rows):,} pairs")
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dev_json", type=Path)
    ap.add_argument("test_json", type=Path)
    ap.add_argument("outdir", type=Path)
    args = ap.parse_args(argv)
    try:
        build(args.dev_json, args.test_json, args.outdir)
    except (BuildError, OSError) as e:
        print(f"build_bsd_enja: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
