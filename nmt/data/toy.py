"""A synthetic translation task made by code, for the toy recipe and the tests.

Source: 3-10 words from a 16-word vocabulary. Target: the same words in reverse order, each mapped
through a fixed dictionary. Learning it needs attention (every target word is aligned with one
source word, far away for long sentences), and a small model learns it in well under a minute
on a CPU. ``python -m nmt.data.toy DIR`` writes DIR/toy/{train,dev,test}.{src,tgt}.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SRC_WORDS = [
    "red",
    "blue",
    "green",
    "black",
    "white",
    "cat",
    "dog",
    "bird",
    "fish",
    "tree",
    "big",
    "small",
    "runs",
    "sees",
    "eats",
    "and",
]
TGT_WORDS = [
    "aka",
    "ao",
    "midori",
    "kuro",
    "shiro",
    "neko",
    "inu",
    "tori",
    "sakana",
    "ki",
    "ooki",
    "chiisa",
    "hashiru",
    "miru",
    "taberu",
    "to",
]
DICTIONARY = dict(zip(SRC_WORDS, TGT_WORDS))


def make_pairs(n: int, seed: int, min_len: int = 3, max_len: int = 10) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rnd.choice(SRC_WORDS) for _ in range(rnd.randint(min_len, max_len))]
        pairs.append((" ".join(words), " ".join(DICTIONARY[w] for w in reversed(words))))
    return pairs


def write_corpus(out_dir: Path, train: int = 6000, dev: int = 200, test: int = 200, seed: int = 1) -> Path:
    """Write the toy corpus under ``out_dir/toy``; returns that folder."""
    folder = Path(out_dir) / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, s in (("train", train, seed), ("dev", dev, seed + 1), ("test", test, seed + 2)):
        pairs = make_pairs(n, s)
        (folder / f"{split}.src").write_text("".join(p[0] + "\n" for p in pairs), encoding="utf-8")
        (folder / f"{split}.tgt").write_text("".join(p[1] + "\n" for p in pairs), encoding="utf-8")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--train", type=int, default=6000)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    print(write_corpus(a.out_dir, train=a.train, seed=a.seed))


if __name__ == "__main__":
    main()
