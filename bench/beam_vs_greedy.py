#!/usr/bin/env python3
"""Search quality on a real test set: does beam search find hypotheses the model scores higher than greedy's?

Decodes every sentence with greedy search and with beam search (no length penalty, so both rank
by the model's log-probability) and prints the share of sentences where the beam's best
log-probability is at least greedy's, and the mean gain. Exact beam search with beam >= 1 can
only lose to greedy when greedy's path falls off the beam early (rare); figures, no asserts.

  python bench/beam_vs_greedy.py --ckpt runs/en_ja_small/checkpoints/best.pt \
      --input ../shared/data/small_parallel_enja/test.en --beam 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.cli.common import one_line_errors  # noqa: E402
from nmt.config import LengthPenalty, SearchConfig, SearchMethod  # noqa: E402
from nmt.data.files import read_lines  # noqa: E402
from nmt.model.io import load_model  # noqa: E402
from nmt.runtime import resolve_device  # noqa: E402
from nmt.translator import decode_ids  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    device = resolve_device(a.device)
    model, src_tok, _, _ = load_model(a.ckpt, device)
    ids = [s for s in src_tok.encode(read_lines(a.input)) if s]
    greedy = decode_ids(model, ids, SearchConfig(method=SearchMethod.greedy), device)
    beam_cfg = SearchConfig(method=SearchMethod.beam, beam_size=a.beam, length_penalty=LengthPenalty.none)
    beam = decode_ids(model, ids, beam_cfg, device)
    gains = [b[0].log_prob - g[0].log_prob for g, b in zip(greedy, beam)]
    at_least = sum(d >= -1e-4 for d in gains)
    print(
        f"{a.input}: {len(ids)} sentences, beam {a.beam} (no length penalty) vs greedy, by model log-probability"
    )
    print(
        f"  beam >= greedy on {at_least} ({100 * at_least / len(ids):.1f}%), strictly better on "
        f"{sum(d > 1e-4 for d in gains)}, worse on {len(ids) - at_least}"
    )
    print(f"  mean gain {statistics.mean(gains):.3f} nats; worst {min(gains):.3f}, best {max(gains):.3f}")


if __name__ == "__main__":
    with one_line_errors("bench/beam_vs_greedy.py"):
        main()
