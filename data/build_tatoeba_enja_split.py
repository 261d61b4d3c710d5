#!/usr/bin/env python3
"""Tatoeba English-Japanese pairs split into train/dev/test by English sentence.

tatoeba_manythings_enja is raw, cased everyday sentences (44,917 pairs), with no dev or test set:
many English sentences have several Japanese translations, so a random split of pairs would put
the same English sentence in training and test. This splits by sentence instead:

- a sentence's key is its words lowercased, punctuation dropped ("Go!" and "go." are one sentence);
- a key goes to test or dev by a hash of it (sha1, about 2.5 % each), so every pair with that
  English sentence is in the same split; dev and test keep one pair per sentence (the first);
- pairs whose English sentence is one of small_parallel_enja's dev or test sentences are never
  trained on (that corpus comes from the Tanaka corpus, part of Tatoeba), so a model of either
  recipe can be scored on the other's held-out sentences.

    python data/build_tatoeba_enja_split.py --tatoeba DIR --small-parallel DIR OUT
(the folders of tatoeba_manythings_enja and small_parallel_enja); writes OUT/{train,dev,test}.{en,ja}
and prints the counts. Standard library only. data/download.sh tatoeba_enja_split runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # words, with an inner apostrophe ("didn't")


def read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def sentence_key(text: str) -> str:
    """Lowercased words without punctuation; the tokenised "didn 't" and the raw "didn't" agree."""
    return " ".join(WORD.findall(text.lower().replace(" '", "'")))


def bucket(key: str) -> int:
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tatoeba", type=Path, required=True, help="folder of tatoeba_manythings_enja")
    ap.add_argument("--small-parallel", type=Path, required=True, help="folder of small_parallel_enja")
    ap.add_argument("out", type=Path)
    ap.add_argument("--test-per-mille", type=int, default=25)
    ap.add_argument("--dev-per-mille", type=int, default=25)
    a = ap.parse_args()
    en = read(a.tatoeba / "train.en")
    ja = read(a.tatoeba / "train.ja")
    assert len(en) == len(ja), "tatoeba_manythings_enja: train.en and train.ja differ in length"
    held_out = {sentence_key(s) for split in ("dev", "test") for s in read(a.small_parallel / f"{split}.en")}
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    seen: set[str] = set()
    dropped = 0
    for e, j in zip(en, ja):
        k = sentence_key(e)
        b = bucket(k)
        split = (
            "test" if b < a.test_per_mille else "dev" if b < a.test_per_mille + a.dev_per_mille else "train"
        )
        if split == "train" and k in held_out:
            dropped += 1
            continue
        if split != "train":
            if k in seen:
                continue
            seen.add(k)
        splits[split].append((e, j))
    a.out.mkdir(parents=True, exist_ok=True)
    for split, pairs in splits.items():
        for side, lang in ((0, "en"), (1, "ja")):
            (a.out / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8")
    train_keys = {sentence_key(e) for e, _ in splits["train"]}
    assert not train_keys & {sentence_key(e) for e, _ in splits["dev"] + splits["test"]}
    assert not train_keys & held_out
    print(
        f"train {len(splits['train'])}, dev {len(splits['dev'])}, test {len(splits['test'])} pairs; "
        f"{dropped} training pairs dropped for holding a small_parallel_enja dev/test sentence"
    )


if __name__ == "__main__":
    main()
