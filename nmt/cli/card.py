"""nmt-card: a run directory in, its results card out (card.md, card.json, curves.png).

The card gathers what a reader needs to trust and compare a result: the test scores of every
evaluation the recipe ran (``<run_dir>/eval/*.json``, with SacreBLEU signatures), the dev-BLEU and
loss curves, training time and throughput, hardware, seed, git commit, the exact commands
(``<run_dir>/commands.txt``) and a few example translations. With ``readme=...`` it also replaces
the block between ``<!-- results:begin -->`` and ``<!-- results:end -->`` of a recipe README and
copies the PNG beside it, so recipe READMEs are never edited by hand.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

from nmt import NmtError
from nmt.cli.common import hydra_cli
from nmt.config import CardJob
from nmt.data.files import read_lines

log = logging.getLogger(__name__)

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(records: list[dict], out: Path, title: str) -> bool:
    """Training loss and dev loss (left), dev BLEU (right) against the step; False if nothing to plot."""
    train = [r for r in records if r.get("kind") == "train"]
    valid = [r for r in records if r.get("kind") == "valid"]
    if not train and not valid:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        ax1.plot(
            [r["step"] for r in train], [r["loss"] for r in train], lw=1, label="train loss (label-smoothed)"
        )
    if valid:
        ax1.plot([r["step"] for r in valid], [r["dev_nll"] for r in valid], "o-", ms=3, label="dev NLL")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss per target piece")
    ax1.legend()
    ax1.grid(alpha=0.3)
    bleu = [r for r in valid if "dev_bleu" in r]
    if bleu:
        ax2.plot([r["step"] for r in bleu], [r["dev_bleu"] for r in bleu], "o-", ms=3, color="C2")
        best = max(bleu, key=lambda r: r["dev_bleu"])
        ax2.annotate(
            f"best {best['dev_bleu']:.2f}",
            (best["step"], best["dev_bleu"]),
            textcoords="offset points",
            xytext=(-40, -15),
        )
    ax2.set_xlabel("step")
    ax2.set_ylabel("dev BLEU (greedy)")
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def _evaluations(run_dir: Path) -> list[dict]:
    evals = []
    for p in sorted((run_dir / "eval").glob("*.json")):
        e = json.loads(p.read_text())
        e["name"] = p.stem
        evals.append(e)
    return evals


def _repeats(row: dict) -> str:
    """The share of outputs that repeat a span of 2+ tokens back to back, and of the references."""
    if "repeats" not in row:
        return "-"
    return f"{100 * row['repeats']:.1f} ({100 * row['repeats_ref']:.1f})"


def _ckpt_name(ckpt: str | list | None) -> str:
    """A checkpoint's file name, or "a.pt + b.pt" for an ensemble."""
    paths = ckpt if isinstance(ckpt, list) else [ckpt or ""]
    return " + ".join(Path(p).name for p in paths)


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _search_text(s: dict, options: dict | None = None) -> str:
    extra = ""
    if options and options.get("replace_unk") is False:
        extra += ", replace_unk off"
    if options and options.get("quantize", "none") != "none":
        extra += f", {options['quantize']}"
    return _method_text(s) + extra


def _method_text(s: dict) -> str:
    if s.get("method") == "beam":
        lp = s.get("length_penalty")
        pen = (
            f", GNMT α={s.get('alpha')}" if lp == "gnmt" else ("" if lp == "none" else f", {lp} length norm")
        )
        cov = f", coverage β={s['coverage_penalty']}" if s.get("coverage_penalty") else ""
        stop = ", first-K stop" if s.get("stop") == "first_k" else ""
        return f"beam {s.get('beam_size')}{pen}{cov}{stop}"
    return str(s.get("method", "?"))


def _examples(evals: list[dict], n: int) -> list[dict]:
    for e in reversed(evals):  # the last evaluation is the recipe's final one
        for row in e.get("results", []):
            if row.get("hyp") and Path(row["hyp"]).is_file():
                src, ref, hyp = (read_lines(Path(row[k])) for k in ("src", "ref", "hyp"))
                picks = [i for i in range(len(src)) if src[i].strip()][:n]
                return [
                    {"test_set": row["test_set"], "source": src[i], "reference": ref[i], "nmt": hyp[i]}
                    for i in picks
                ]
    return []


def _data_table(run_dir: Path, summary: dict) -> list[str]:
    """Per training corpus: pairs read, kept, dropped by which filter, weight and draws an epoch
    (from the prepared data's manifest and the training summary)."""
    manifest_path = run_dir / "data" / "manifest.json"
    if not manifest_path.is_file():
        return []
    corpora = json.loads(manifest_path.read_text()).get("corpora", {})
    drawn = summary.get("corpora", {})
    if not corpora:
        return []
    md = [
        "| training corpus | read | kept | dropped | weight | drawn an epoch |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, c in corpora.items():
        dropped = ", ".join(f"{k} {v:,}" for k, v in c.get("dropped", {}).items() if v) or "none"
        d = drawn.get(name, {})
        md.append(
            f"| {name} | {c.get('read', 0):,} | {c.get('kept', 0):,} | {dropped} | {d.get('weight', '-')} "
            f"| {_num(d.get('drawn_per_epoch'), 0)} |"
        )
    return [*md, ""]


def build_card(run_dir: Path, title: str, n_examples: int) -> tuple[str, dict]:
    summary = (
        json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    )
    records = _read_jsonl(run_dir / "metrics.jsonl")
    evals = _evaluations(run_dir)
    sweeps = [e for e in evals if "alpha_sweep" in e]
    evals = [e for e in evals if "results" in e]
    if not summary and not evals:
        raise NmtError(f"{run_dir}: no summary.json and no eval/*.json: not a finished run")
    commands = (run_dir / "commands.txt").read_text().strip() if (run_dir / "commands.txt").is_file() else ""
    has_plot = plot_curves(records, run_dir / "curves.png", title)
    examples = _examples(evals, n_examples)
    card = {
        "title": title,
        "run_dir": str(run_dir),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "summary": summary,
        "evaluations": evals,
        "examples": examples,
        "commands": commands.splitlines(),
    }

    md = [f"### Results card: {title}", ""]
    if summary:
        secs = summary.get("train_seconds", 0)
        md += [
            f"- **training**: {summary.get('steps')} steps, {summary.get('epochs')} epochs, {secs / 60:.1f} min "
            f"(stopped: {summary.get('stop_reason')}); {summary.get('parameters', 0):,} parameters",
            f"- **throughput**: {_num(summary.get('steady_target_tokens_per_second'), 0)} target pieces/s steady, "
            f"{_num(summary.get('target_tokens_per_second'), 0)} on average including validation",
            f"- **best dev BLEU** (greedy): {_num(summary.get('best_dev_bleu'))} at step {summary.get('best_step')}",
            f"- **hardware**: {summary.get('hardware')} (device {summary.get('device')})",
            f"- **seed** {summary.get('seed')}, **git commit** `{summary.get('git_commit')}`",
            "",
        ]
    md += _data_table(run_dir, summary)
    for e in sweeps:
        tried = ", ".join(f"α={r['alpha']}: {r['scores'][0]['score']:.2f}" for r in e["alpha_sweep"])
        md += [
            f"- **length penalty** for {_ckpt_name(e.get('checkpoint'))}, chosen on "
            f"{e['alpha_sweep'][0]['test_set']} (BLEU, beam): {tried} → α={e['best_alpha']}",
            "",
        ]
    if evals:
        md += [
            "| checkpoint | search | test set | sentences | BLEU | chrF | BLEU -tok none (segmented) | repeats % (references) | unknown pieces (left in text) | sent/s |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        sigs: dict[str, str] = {}
        for e in evals:
            for r in e.get("results", []):
                sc = r["scores"]
                main, chrf, seg = (sc[1], sc[2], sc[0]) if len(sc) == 3 else (sc[0], sc[1], None)
                seg_txt = "" if seg is None else f"{seg['score']:.2f}"
                md.append(
                    f"| {_ckpt_name(e.get('checkpoint'))} | {_search_text(e.get('search', {}), e.get('options'))} "
                    f"| {r['test_set']} | {r['sentences']} | {main['score']:.2f} | {chrf['score']:.2f} "
                    f"| {seg_txt} | {_repeats(r)} | {r.get('unknown_pieces', '-')} ({r.get('unknown_left', '-')}) "
                    f"| {r['sentences_per_second']} |"
                )
                for s in sc:
                    sigs.setdefault(
                        s["signature"], s["metric"] + (f" ({s['detail']})" if s.get("detail") else "")
                    )
        md += ["", "SacreBLEU signatures:", ""] + [f"- {what}: `{sig}`" for sig, what in sigs.items()] + [""]
    if has_plot:
        md += ["![training curves: loss and dev BLEU against steps](curves.png)", ""]
    if examples:
        md += [
            f"Examples (first lines of {examples[0]['test_set']}):",
            "",
            "| source | reference | nmt |",
            "|---|---|---|",
        ]
        md += [f"| {x['source']} | {x['reference']} | {x['nmt']} |".replace("\n", " ") for x in examples] + [
            ""
        ]
    if commands:
        md += ["Commands:", "", "```", commands, "```", ""]
    return "\n".join(md), card


def update_readme(readme: Path, card_md: str, png: Path | None) -> None:
    text = readme.read_text() if readme.is_file() else ""
    block = f"{BEGIN}\n{card_md}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + block + "\n"
    if png is not None and png.is_file():
        shutil.copyfile(png, readme.parent / png.name)
    readme.write_text(text)


def task(cfg: CardJob) -> None:
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise NmtError(f"{run_dir}: no such run directory")
    title = cfg.title or run_dir.name
    md, card = build_card(run_dir, title, cfg.examples)
    (run_dir / "card.md").write_text(md)
    (run_dir / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False))
    log.info("wrote %s, %s and curves.png", run_dir / "card.md", run_dir / "card.json")
    if cfg.readme:
        update_readme(Path(cfg.readme), md, run_dir / "curves.png")
        log.info("updated the results block of %s", cfg.readme)
    print(md)


main = hydra_cli("card", task, direct=True)

if __name__ == "__main__":
    main()
