"""Terminology constraints on a test set: BLEU, terms present and speed, with and without them.

The terms come from the references, as in Post & Vilar (2018): for each sentence up to ``--terms``
words of its reference (MeCab's words for Japanese, of at least two characters, with a kanji or a
katakana: names and terms rather than particles), drawn at random (``--seed``) among those the
model can write. Each sentence is translated with beam search without its terms and with them
(constrained beam search, dynamic beam allocation), and the script prints BLEU (the target
language's tokenizer), the share of terms in the output, the share of outputs with a repeated
span, and sentences/s of each, side by side in one run.

    python bench/constraints.py --ckpt runs/en_ja_kyoto_cpu/checkpoints/best.pt \
        --src ../shared/data/kyoto_wiki/test.en --ref ../shared/data/kyoto_wiki/test.ja --sample 500
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

import torch

from nmt.api import load_translator
from nmt.config import SearchConfig, SearchMethod
from nmt.data.files import read_parallel, spread_indices
from nmt.metrics import bleu, default_tokenize, repetition
from nmt.runtime import hardware, set_threads

TERM = re.compile(r"[\u4e00-\u9fff\u30a0-\u30ff]")  # a kanji or a katakana


def pick_terms(ref: str, n: int, rnd: random.Random, writable) -> list[str]:  # noqa: ANN001
    """Up to ``n`` distinct words of the reference that look like terms, in the reference's order."""
    from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

    words = TokenizerJaMecab()(ref).split()
    seen, pool = set(), []
    for w in words:
        if len(w) >= 2 and TERM.search(w) and w not in seen and writable(w):
            seen.add(w)
            pool.append(w)
    chosen = set(rnd.sample(pool, min(n, len(pool))))
    return [w for w in pool if w in chosen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--lang", default="ja")
    ap.add_argument("--sample", type=int, default=0, help="sentences spread over the set (0: all)")
    ap.add_argument("--terms", type=int, default=2, help="terms per sentence, at most")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--output", help="JSON file for the figures")
    args = ap.parse_args()
    set_threads(args.threads)
    src, refs = read_parallel(Path(args.src), Path(args.ref))
    keep = spread_indices(len(src), args.sample)
    src, refs = [src[i] for i in keep], [refs[i] for i in keep]
    cfg = SearchConfig(method=SearchMethod.beam, beam_size=args.beam)
    tr, _ = load_translator(args.ckpt, torch.device("cpu"), cfg)

    def writable(term: str) -> bool:
        try:
            tr.constraint_ids(term)
            return True
        except Exception:  # noqa: BLE001 - a term with pieces the model cannot write is skipped
            return False

    rnd = random.Random(args.seed)
    terms = [pick_terms(r, args.terms, rnd, writable) for r in refs]
    tok = default_tokenize(args.lang)
    tr.translate(src[:4])  # warm up (the precision probe, the first kernels)
    rows = {}
    for name, constraints in (("without terms", None), ("with terms", terms)):
        t0 = time.perf_counter()
        hyps = tr.translate(src, constraints=constraints)
        secs = time.perf_counter() - t0
        present = sum(t in h for h, ts in zip(hyps, terms) for t in ts)
        rows[name] = {
            "bleu": round(bleu(hyps, refs, tok).score, 2),
            "terms_present": present,
            "terms": sum(map(len, terms)),
            "repeats": round(repetition(hyps, tok), 4),
            "seconds": round(secs, 1),
            "sentences_per_second": round(len(src) / secs, 2),
            "example": hyps[0],
        }
    print(f"{hardware(torch.device('cpu'))}; {tr.precision().why}")
    n_terms = sum(map(len, terms))
    print(
        f"{len(src)} sentences, {n_terms} terms ({sum(1 for t in terms if t)} sentences with terms), beam {args.beam}"
    )
    print(f"{'':<15}{'BLEU':>7}{'terms in output':>17}{'repeats %':>11}{'sent/s':>9}")
    for name, r in rows.items():
        share = f"{r['terms_present']}/{r['terms']}"
        print(
            f"{name:<15}{r['bleu']:>7.2f}{share:>17}{100 * r['repeats']:>11.1f}{r['sentences_per_second']:>9.2f}"
        )
    print(f"e.g. terms {terms[0]}: {rows['without terms']['example']} -> {rows['with terms']['example']}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "terms": terms, "args": vars(args)}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
