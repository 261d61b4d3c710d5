#!/usr/bin/env python3
"""Figures and nmt / peer ratios from a bench/peers.sh run (OpenNMT-py, JoeyNMT and nmt, one machine).

Reads each tool's training log (steady-state target tokens/s: the median of the logged rates after
the first fifth of the run), its rssmon JSON files (peak RSS of the process tree, wall time), and
its hypothesis files (BLEU with SacreBLEU, ``-tok none`` on the segmented reference, as the
harness's ``score`` stage). Decoding speed is sentences / wall time of the whole translate process
(start-up included, as the harness measures every tool). Prints a table; writes JSON with --json.

``--rounds a.json b.json ...``: the JSON of several rounds (bench/peers.sh alternate: the tools
trained in turn, round after round), summarised: each round's training tok/s and nmt / peer ratio,
and the medians. On a machine whose speed drifts, only such alternated figures compare.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from sacrebleu.metrics import BLEU

TOOLS = {"onmt": "OpenNMT-py 3.5.1", "joey": "JoeyNMT 2.3.0", "ours": "nmt"}
RATE = {
    "onmt": (re.compile(r"(\d+)/\s*(\d+) tok/s"), 2, "train.log"),  # src/tgt tok/s
    "joey": (re.compile(r"Tokens per Sec:\s*(\d+)"), 1, "model/train.log"),
    "ours": (re.compile(r"\| ([\d,]+) tgt tok/s"), 1, "nmt/train.log"),
}


def steady_rate(tool: str, run: Path) -> float | None:
    rx, group, name = RATE[tool]
    path = run / name
    if not path.is_file():
        return None
    rates = [float(m.group(group).replace(",", "")) for m in rx.finditer(path.read_text(errors="replace"))]
    rates = rates[len(rates) // 5 :] or rates
    return statistics.median(rates) if rates else None


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def header(label: str, tools: list[str]) -> str:
    return (
        f"{label:<28}"
        + "".join(f"{TOOLS[t]:>18}" for t in tools)
        + "".join(f"{'nmt/' + t:>12}" for t in tools if t != "ours")
    )


def row(label: str, values: dict[str, float | None]) -> str:
    """One figure for each tool, then nmt / peer for each peer (nan where either is missing)."""
    ours = values.get("ours")
    return (
        f"{label:<28}"
        + "".join(f"{v if v is not None else '-':>18}" for v in values.values())
        + "".join(
            f"{(ours / v if ours and v else float('nan')):>12.2f}" for t, v in values.items() if t != "ours"
        )
    )


def summarize_rounds(paths: list[Path]) -> None:
    """Training tok/s of each tool per round, nmt / peer per round, and the medians."""
    rounds = [json.loads(p.read_text()) for p in paths]
    tools = [t for t in TOOLS if all(r.get(t, {}).get("train_tok_s") for r in rounds)]
    print(header("training tok/s", tools))
    for p, r in zip(paths, rounds):
        print(row(p.stem, {t: r[t]["train_tok_s"] for t in tools}))
    print(row("median", {t: statistics.median(r[t]["train_tok_s"] for r in rounds) for t in tools}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("/tmp/nmt-peers/runs"))
    ap.add_argument("--data", type=Path, help="small_parallel_enja folder (test.ja)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="which tools' runs to read (onmt,joey,ours)")
    ap.add_argument("--train-only", action="store_true", help="training figures only (no decoding, no BLEU)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rounds", type=Path, nargs="+", help="summarise these rounds' JSON files instead")
    a = ap.parse_args()
    if a.rounds:
        summarize_rounds(a.rounds)
        return
    tools = a.tools.split(",")
    if set(tools) - set(TOOLS):
        ap.error(f"--tools: unknown {sorted(set(tools) - set(TOOLS))}; known: {','.join(TOOLS)}")
    if a.data is None and not a.train_only:
        ap.error("--data is required (the small_parallel_enja folder), unless --train-only")
    refs = [] if a.train_only else (a.data / "test.ja").read_text(encoding="utf-8").splitlines()
    res: dict[str, dict] = {}
    for tool in [t for t in TOOLS if t in tools and (a.runs / t).is_dir()]:
        run = a.runs / tool
        r: dict = {"train_tok_s": steady_rate(tool, run)}
        tr = load(run / "train_rss.json")
        r["train_peak_rss_mib"] = tr and tr["peak_rss_tree_mib"]
        for name in () if a.train_only else ("greedy", "beam5"):
            for bs in (64, 1):
                d = load(run / f"dec_{name}_bs{bs}.json")
                hyp = run / f"hyp.{name}.bs{bs}.ja"
                key = f"{name}_bs{bs}"
                if d and hyp.is_file():
                    hyps = hyp.read_text(encoding="utf-8").splitlines()
                    r[f"{key}_sent_s"] = round(len(refs) / d["wall_s"], 1)
                    r[f"{key}_peak_rss_mib"] = d["peak_rss_tree_mib"]
                    if len(hyps) == len(refs):
                        r[f"{key}_bleu"] = round(BLEU(tokenize="none").corpus_score(hyps, [refs]).score, 2)
        res[tool] = r
    keys = sorted({k for r in res.values() for k in r}, key=lambda k: (not k.startswith("train"), k))
    print(header("", list(res)))
    for k in keys:
        print(row(k, {t: res[t].get(k) for t in res}))
    print(
        "(tok/s: target tokens per second of training, steady state; sent_s: test sentences / wall time of the "
        "translate process; BLEU: -tok none on the segmented reference; ratios: nmt / peer)"
    )
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
