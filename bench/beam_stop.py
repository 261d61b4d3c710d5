#!/usr/bin/env python3
"""The beam's stopping rule, chosen by measurement: ``search.stop=exact`` vs ``first_k``.

For each rule, the GNMT length penalty alpha is tuned on a dev set (BLEU), then the test set is
decoded at each rule's best alpha. Prints, per rule and alpha, BLEU, the decoder steps taken
(one step of one sentence's beam counts 1) and the decoding time; figures only, no asserts.
The rule to make the default is the one that is faster at equal or better dev BLEU.

  python bench/beam_stop.py --ckpt runs/en_ja_small/checkpoints/best.pt \\
      --dev ../shared/data/small_parallel_enja/dev --test ../shared/data/small_parallel_enja/test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import nmt  # noqa: E402
from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.data.files import read_lines  # noqa: E402
from nmt.metrics import bleu  # noqa: E402


def decode(tr: nmt.translator.Translator, src: list[str], beam: int) -> tuple[list[str], int, float]:
    """Translations, decoder steps (sentences x steps) and seconds."""
    steps = 0
    model = tr.model
    step = model.decode_step

    def counting(tokens: torch.Tensor, *args: object, **kw: object) -> object:
        nonlocal steps
        steps += tokens.numel() // beam
        return step(tokens, *args, **kw)

    model.decode_step = counting
    try:
        start = time.perf_counter()
        out = tr.translate(src)
        return out, steps, time.perf_counter() - start
    finally:
        del model.decode_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--dev", required=True, help="path prefix: <dev>.en and <dev>.ja")
    ap.add_argument("--test", required=True, help="path prefix: <test>.en and <test>.ja")
    ap.add_argument("--src", default="en")
    ap.add_argument("--tgt", default="ja")
    ap.add_argument("--alphas", default="0.0,0.3,0.6,1.0,1.5,2.0")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--tokenize", default="none", help="SacreBLEU tokenizer (none: segmented reference)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    alphas = [float(x) for x in a.alphas.split(",")]
    sets = {
        name: (read_lines(Path(f"{p}.{a.src}")), read_lines(Path(f"{p}.{a.tgt}")))
        for name, p in (("dev", a.dev), ("test", a.test))
    }
    results: dict = {"ckpt": a.ckpt, "beam": a.beam, "tokenize": a.tokenize, "rules": {}}
    for rule in ("exact", "first_k"):
        rows = []
        for alpha in alphas:
            tr = nmt.load(a.ckpt, search={"beam_size": a.beam, "alpha": alpha, "stop": rule},
                          processed=True, keep_segmentation=True, batch_size=64 * 20)  # fmt: skip
            hyps, steps, secs = decode(tr, sets["dev"][0], a.beam)
            score = bleu(hyps, sets["dev"][1], a.tokenize).score
            rows.append(
                {"alpha": alpha, "dev_bleu": round(score, 2), "dev_steps": steps, "dev_s": round(secs, 2)}
            )
            print(
                f"{rule:<8} alpha {alpha:<4} dev BLEU {score:6.2f}  steps {steps:6d}  {secs:6.2f} s",
                flush=True,
            )
        best = max(rows, key=lambda r: (r["dev_bleu"], -r["dev_steps"]))
        tr = nmt.load(a.ckpt, search={"beam_size": a.beam, "alpha": best["alpha"], "stop": rule},
                      processed=True, keep_segmentation=True, batch_size=64 * 20)  # fmt: skip
        hyps, steps, secs = decode(tr, sets["test"][0], a.beam)
        test = {"alpha": best["alpha"], "test_bleu": round(bleu(hyps, sets["test"][1], a.tokenize).score, 2),
                "test_steps": steps, "test_s": round(secs, 2)}  # fmt: skip
        print(f"{rule:<8} best dev alpha {best['alpha']}: test BLEU {test['test_bleu']:.2f}, "
              f"steps {steps}, {secs:.2f} s", flush=True)  # fmt: skip
        results["rules"][rule] = {"dev": rows, "test_at_best_dev_alpha": test}
    print(json.dumps({r: v["test_at_best_dev_alpha"] for r, v in results["rules"].items()}, indent=1))
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    with one_line_errors("bench/beam_stop.py"):
        main()
