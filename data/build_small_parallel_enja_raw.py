#!/usr/bin/env python3
"""small_parallel_enja's test set as people would type it: detokenised and re-cased English.

small_parallel_enja's English is Moses-tokenised and lowercased ("he didn 't care for swimming .").
This writes <out>/test.en with the same 500 sentences as a person writes them, and <out>/test.ja
(the references, unchanged), so a model can be scored on raw input:

1. where the Tatoeba export (tatoeba_manythings_enja; small_parallel_enja comes from the Tanaka
   corpus, which is part of Tatoeba) has the sentence, its own text: the first Tatoeba sentence
   that is equal after lowercasing and splitting punctuation;
2. else the sentence detokenised (sacremoses' Moses detokeniser, the inverse of the tokenisation
   the corpus had) and re-cased: a capital at the start, "I", and every word that Tatoeba writes
   with a capital when it is not the first word (names, places, days, languages) in that form.

    python data/build_small_parallel_enja_raw.py --tatoeba DIR --small-parallel DIR OUT
(the folders of tatoeba_manythings_enja and small_parallel_enja); needs sacremoses (installed with
nmt). Prints how many sentences came from Tatoeba. data/download.sh small_parallel_enja_raw runs it.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

from sacremoses import MosesDetokenizer, MosesTokenizer


def read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def key(tokens: list[str]) -> str:
    return " ".join(t.lower() for t in tokens)


def casing_table(sentences: list[list[str]]) -> dict[str, str]:
    """lowercased word -> its usual written form, learnt from words that are not sentence-initial:
    the form wins if it is capitalised in more than half of the non-initial occurrences."""
    forms: dict[str, Counter] = defaultdict(Counter)
    for words in sentences:
        for w in words[1:]:
            if w.isalpha():
                forms[w.lower()][w] += 1
    table = {}
    for low, counts in forms.items():
        form, n = counts.most_common(1)[0]
        if form != low and n > sum(counts.values()) / 2:
            table[low] = form
    return table


def recase(words: list[str], table: dict[str, str]) -> list[str]:
    out = [table.get(w, w) for w in words]
    out = ["I" if w == "i" else w for w in out]
    for k, w in enumerate(out):  # the first word that starts with a letter gets a capital
        if w[:1].isalpha():
            out[k] = w[:1].upper() + w[1:]
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tatoeba", type=Path, required=True, help="folder of tatoeba_manythings_enja")
    ap.add_argument("--small-parallel", type=Path, required=True, help="folder of small_parallel_enja")
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    tok, detok = MosesTokenizer(lang="en"), MosesDetokenizer(lang="en")
    tatoeba = read(a.tatoeba / "train.en")
    tokenized = [tok.tokenize(s, escape=False) for s in tatoeba]
    by_key: dict[str, str] = {}
    for raw, words in zip(tatoeba, tokenized):
        by_key.setdefault(key(words), raw)
    table = casing_table(tokenized)

    src = read(a.small_parallel / "test.en")
    out, found = [], 0
    for line in src:
        words = line.split()
        if key(words) in by_key:
            out.append(by_key[key(words)])
            found += 1
        else:
            text = detok.detokenize(recase(words, table))
            out.append(re.sub(r"\s+", " ", text).strip())
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "test.en").write_text("".join(s + "\n" for s in out), encoding="utf-8")
    ref = (a.small_parallel / "test.ja").read_bytes()
    (a.out / "test.ja").write_bytes(ref)
    print(f"{len(out)} sentences: {found} in Tatoeba's own form, {len(out) - found} detokenised and re-cased")


if __name__ == "__main__":
    main()
