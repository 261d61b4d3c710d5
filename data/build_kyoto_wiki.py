#!/usr/bin/env python3
"""Build data/corpora/kyoto_wiki from the NICT Kyoto Wikipedia XML release (standard library only).

Usage:
    python3 data/build_kyoto_wiki.py SOURCE OUTDIR

SOURCE is the release as a tarball (.tar.gz / .tar, e.g. the GitHub archive of
venali/BilingualCorpus or NICT's wiki_corpus_2.01.tar.gz) or an unpacked folder. Every member
whose path ends in <CAT>/<CAT>NNNNN.xml (e.g. BDS/BDS00001.xml) is read; nothing else is.

OUTDIR receives {train,dev,test}.{en,ja,ids}. The rules, as in the kyoto_wiki README:

Extraction (per article, per <sen> in document order; <tit> headings are not used):
  * Japanese: the text of <j>.
  * English: the text of the <e type="check"> with the highest ver (the final, checked
    translation).
  * XML entities are decoded by the parser. A file that is not well-formed is parsed again after
    escaping bare "&" as "&amp;" (GNM00155.xml has one in its <copyright> line).
  * Each run of tab / CR / LF inside a sentence becomes one space; surrounding whitespace is
    stripped. Nothing else is changed.
  * A pair whose English (or Japanese) side is then empty is dropped (2 in release 2.01).

Split (by article, our own; NOT the official KFTT split):
  * Articles with 20 to 120 kept pairs are eligible for dev/test. Ordered by
    md5("kyoto-split-v1:" + file name, e.g. "BDS00001.xml"), an eligible article goes to test
    while test has fewer than 2,000 pairs, then to dev while dev has fewer than 2,000 pairs.
    All other articles are train.
  * Within a split, articles follow file-name order and pairs follow sentence order.
  * <split>.ids holds "<file name>\t<sen id>" for every line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path

SPLIT_SALT = "kyoto-split-v1:"
ELIGIBLE_MIN, ELIGIBLE_MAX = 20, 120  # article size (kept pairs) eligible for dev/test
HELD_OUT_TARGET = 2000  # fill test, then dev, until each has at least this many pairs
SPLITS = ("train", "dev", "test")

# What release 2.01 gives; a different count is reported (the checksums will then differ).
EXPECTED_ARTICLES = 14111
EXPECTED_SENTENCES = 443849
EXPECTED_PAIRS = {"train": 439811, "dev": 2012, "test": 2024}

ARTICLE_PATH = re.compile(r"(?:^|/)([A-Z]{3})/(\1\d{5}\.xml)$")
WHITESPACE_RUN = re.compile(r"[\t\r\n]+")
# "&" that does not start an entity or character reference
BARE_AMPERSAND = re.compile(rb"&(?!(?:[A-Za-z_][A-Za-z0-9._-]*|#[0-9]+|#x[0-9A-Fa-f]+);)")


class BuildError(Exception):
    pass


def clean(text: str) -> str:
    return WHITESPACE_RUN.sub(" ", text).strip()


def element_text(elem: ET.Element | None) -> str:
    return "" if elem is None else "".join(elem.itertext())


def parse_xml(data: bytes, name: str) -> tuple[ET.Element, bool]:
    """The article's root element, and whether bare "&" had to be escaped first."""
    try:
        return ET.fromstring(data), False
    except ET.ParseError as first:
        try:
            return ET.fromstring(BARE_AMPERSAND.sub(b"&amp;", data)), True
        except ET.ParseError:
            raise BuildError(f"{name}: not well-formed XML ({first})") from None


def final_english(sen: ET.Element) -> str | None:
    """Text of the <e type="check"> with the highest ver, or None if there is none."""
    best_ver, best = -1, None
    for e in sen.findall("e"):
        if e.get("type") != "check":
            continue
        try:
            ver = int(e.get("ver", "0"))
        except ValueError:
            ver = 0
        if ver > best_ver:
            best_ver, best = ver, e
    return None if best is None else element_text(best)


def extract_article(data: bytes, name: str, stats: dict[str, int]) -> list[tuple[str, str, str]]:
    """The kept (sen id, ja, en) pairs of one article XML, in document order."""
    root, repaired = parse_xml(data, name)
    if repaired:
        stats["repaired_files"] += 1
        print(f"  {name}: not well-formed; parsed after escaping bare '&'", file=sys.stderr)
    pairs: list[tuple[str, str, str]] = []
    for sen in root.iter("sen"):
        stats["sentences"] += 1
        sid = sen.get("id", "")
        ja = clean(element_text(sen.find("j")))
        en_raw = final_english(sen)
        if en_raw is None:
            stats["no_check"] += 1
        en = clean(en_raw or "")
        if not en or not ja:
            stats["dropped"] += 1
            print(
                f"  {name} sen {sid}: empty {'English' if not en else 'Japanese'} side, dropped",
                file=sys.stderr,
            )
            continue
        pairs.append((sid, ja, en))
    return pairs


def iter_source(source: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of every article XML in a tarball or a folder."""
    if source.is_dir():
        for dirpath, _dirs, files in os.walk(source):
            for f in files:
                rel = Path(dirpath, f).relative_to(source).as_posix()
                m = ARTICLE_PATH.search(rel)
                if m:
                    yield m.group(2), Path(dirpath, f).read_bytes()
    elif source.is_file():
        try:
            with tarfile.open(source, "r:*") as tar:
                for member in tar:
                    m = ARTICLE_PATH.search(member.name) if member.isfile() else None
                    f = tar.extractfile(member) if m else None
                    if m and f is not None:
                        yield m.group(2), f.read()
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise BuildError(f"{source}: not a readable (or a truncated) tar archive ({e})") from None
    else:
        raise BuildError(f"{source}: no such file or folder")


def split_articles(sizes: dict[str, int]) -> dict[str, str]:
    """Article file name -> "train" / "dev" / "test", from each article's number of kept pairs."""
    assignment = {name: "train" for name in sizes}
    eligible = [n for n, k in sizes.items() if ELIGIBLE_MIN <= k <= ELIGIBLE_MAX]
    eligible.sort(key=lambda n: (hashlib.md5((SPLIT_SALT + n).encode("utf-8")).hexdigest(), n))
    filled = {"test": 0, "dev": 0}
    for name in eligible:
        for split in ("test", "dev"):
            if filled[split] < HELD_OUT_TARGET:
                assignment[name] = split
                filled[split] += sizes[name]
                break
        else:
            break
    return assignment


def write_splits(articles: dict[str, list[tuple[str, str, str]]], outdir: Path) -> dict[str, int]:
    assignment = split_articles({n: len(p) for n, p in articles.items()})
    outdir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        names = sorted(n for n, s in assignment.items() if s == split)
        n_lines = 0
        with (
            open(outdir / f"{split}.en", "w", encoding="utf-8", newline="\n") as fen,
            open(outdir / f"{split}.ja", "w", encoding="utf-8", newline="\n") as fja,
            open(outdir / f"{split}.ids", "w", encoding="utf-8", newline="\n") as fid,
        ):
            for name in names:
                for sid, ja, en in articles[name]:
                    fen.write(en + "\n")
                    fja.write(ja + "\n")
                    fid.write(f"{name}\t{sid}\n")
                    n_lines += 1
        counts[split] = n_lines
        print(f"{split}: {len(names):,} articles, {n_lines:,} pairs")
    return counts


def build(source: Path, outdir: Path) -> dict[str, int]:
    stats = {"sentences": 0, "dropped": 0, "no_check": 0, "repaired_files": 0}
    articles: dict[str, list[tuple[str, str, str]]] = {}
    for name, data in iter_source(source):
        if name in articles:
            raise BuildError(f"{source}: article {name} occurs twice")
        articles[name] = extract_article(data, name, stats)
        if len(articles) % 2000 == 0:
            print(f"  read {len(articles):,} articles", file=sys.stderr)
    if not articles:
        raise BuildError(f"{source}: no article XML (<CAT>/<CAT>NNNNN.xml) found")
    print(
        f"read {len(articles):,} articles, {stats['sentences']:,} sentences; dropped "
        f"{stats['dropped']} empty pairs; {stats['repaired_files']} file(s) needed '&' escaping"
    )
    if stats["no_check"]:
        print(f'warning: {stats["no_check"]} sentence(s) had no <e type="check">', file=sys.stderr)
    if len(articles) != EXPECTED_ARTICLES or stats["sentences"] != EXPECTED_SENTENCES:
        print(
            f"warning: release 2.01 has {EXPECTED_ARTICLES:,} articles and "
            f"{EXPECTED_SENTENCES:,} sentences; this source differs, so the split and the "
            "checksums will differ too",
            file=sys.stderr,
        )
    counts = write_splits(articles, outdir)
    if counts != EXPECTED_PAIRS:
        print(f"warning: expected {EXPECTED_PAIRS}, got {counts}", file=sys.stderr)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="release tarball or unpacked folder")
    ap.add_argument("outdir", type=Path, help="where to write {train,dev,test}.{en,ja,ids}")
    args = ap.parse_args(argv)
    try:
        build(args.source, args.outdir)
    except BuildError as e:
        print(f"build_kyoto_wiki: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
