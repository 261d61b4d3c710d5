"""nmt-evaluate: SacreBLEU BLEU and chrF of a hypothesis file, or of a checkpoint on named test sets."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from nmt import NmtError
from nmt.api import load_translator
from nmt.checks import validate_evaluate
from nmt.cli.common import hydra_cli
from nmt.config import EvaluateJob, LengthPenalty, SearchConfig, SearchMethod, TestSetConfig
from nmt.data.files import data_path, read_lines, read_parallel, spread_indices
from nmt.metrics import Score, default_tokenize, repetition, score_all, strip_spaces
from nmt.runtime import hardware, resolve_device, set_threads
from nmt.translator import Options, Translator

log = logging.getLogger(__name__)


def score_line(s: Score) -> str:
    detail = f" [{s.detail}]" if s.detail else ""
    return f"{s.metric} = {s.score:.2f} ({s.signature}){detail}"


def evaluate_files(cfg: EvaluateJob) -> dict:
    if not (cfg.hyp and cfg.ref):
        raise NmtError(
            "give hyp=FILE and ref=FILE to score a file, or ckpt=FILE with src=/ref= or test_sets=[...]"
        )
    hyps, refs = read_lines(Path(cfg.hyp)), read_lines(Path(cfg.ref))
    if len(hyps) != len(refs):
        raise NmtError(f"{cfg.hyp} has {len(hyps)} lines but {cfg.ref} has {len(refs)}")
    scores = score_all(hyps, refs, cfg.lang or "ja", cfg.tokenize, cfg.segmented)
    for s in scores:
        print(score_line(s))
    return {"hyp": cfg.hyp, "ref": cfg.ref, "sentences": len(hyps), "scores": [s.as_dict() for s in scores]}


def evaluate_checkpoint(cfg: EvaluateJob) -> dict:
    device = resolve_device(cfg.device)
    set_threads(cfg.num_threads)
    options = Options(
        batch_size=cfg.batch_size,
        max_sentences=cfg.max_sentences,
        max_input_len=cfg.max_input_len,
        on_bad_line=cfg.on_bad_line,
        replace_unk=cfg.replace_unk,
        precision=cfg.precision,
        quantize=cfg.quantize,
        compile=cfg.compile,
        workers=cfg.workers,
    )
    translator, ckpt = load_translator(cfg.ckpt, device, cfg.search, options)
    lang = cfg.lang or ckpt["config"]["data"]["tgt_lang"]
    if cfg.src or cfg.ref:
        if not (cfg.src and cfg.ref):
            raise NmtError("with ckpt=, give both src=FILE and ref=FILE, or test_sets=[...]")
        sets = {
            Path(cfg.src).name: TestSetConfig(
                str(Path(cfg.src).resolve()), str(Path(cfg.ref).resolve()), cfg.segmented, cfg.processed
            )
        }
    else:
        names = cfg.test_sets or list(cfg.data.test_sets)
        unknown = [n for n in names if n not in cfg.data.test_sets]
        if unknown:
            raise NmtError(
                f"unknown test set(s) {', '.join(unknown)}; known: {', '.join(cfg.data.test_sets)}"
            )
        sets = {n: cfg.data.test_sets[n] for n in names}
    log.info("decoding: %s", translator.precision().why)  # precision=auto: probed here
    if cfg.alphas:
        return sweep_alpha(translator, cfg, sets, lang, device)
    rows = [evaluate_set(translator, name, ts, cfg, lang) for name, ts in sets.items()]
    print_table(rows)
    return {
        "checkpoint": cfg.ckpt,
        "search": _search_dict(cfg.search),
        "decoding": translator.precision().why,
        "options": {"replace_unk": cfg.replace_unk, "quantize": cfg.quantize.value},
        "hardware": hardware(device),
        "results": rows,
    }


def _search_dict(search: SearchConfig) -> dict:
    return {k: getattr(v, "value", v) for k, v in vars(search).items()}


def evaluate_set(translator: Translator, name: str, ts: TestSetConfig, cfg: EvaluateJob, lang: str) -> dict:
    """Translate one test set, score it, optionally keep the translations; one result row."""
    src_path, ref_path = data_path(cfg.data, ts.src), data_path(cfg.data, ts.ref)
    src, refs = read_parallel(src_path, ref_path)
    if cfg.first > 0:
        src, refs = src[: cfg.first], refs[: cfg.first]
        name = f"{name} (first {len(src)})"
    elif 0 < cfg.sample < len(src):  # every document of the set, not the first few
        picked = spread_indices(len(src), cfg.sample)
        src, refs = [src[i] for i in picked], [refs[i] for i in picked]
        name = f"{name} ({len(src)} spread)"
    # a segmented reference is scored on the segmented output too; raw input is prepared, a
    # test set already in the corpus's form is not
    translator.options = replace(translator.options, keep_segmentation=ts.segmented, processed=ts.processed)
    start = time.perf_counter()
    out = translator.translate_detailed(src, str(src_path))
    hyps = [t.text for t in out]
    secs = time.perf_counter() - start
    row = {
        "test_set": name,
        "sentences": len(src),
        "seconds": round(secs, 2),
        "sentences_per_second": round(len(src) / max(secs, 1e-9), 1),
        "src": str(src_path),
        "ref": str(ref_path),
        "unknown_pieces": sum(t.unknown for t in out),  # in the model's outputs
        "unknown_left": sum(t.unknown_left for t in out),  # in the scored text
    }
    if cfg.hyp_dir:
        row["hyp"] = str(Path(cfg.hyp_dir) / f"{name}.hyp")
        Path(cfg.hyp_dir).mkdir(parents=True, exist_ok=True)
        Path(row["hyp"]).write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    # -tok none compares segmentations: only for a model that writes the reference's segmented
    # form; a model that writes plain text is scored against the reference with its spaces removed
    tok = cfg.tokenize or default_tokenize(lang)
    if ts.segmented and not (translator.text is not None and translator.text.segmented):
        scores = score_all(strip_spaces(hyps), strip_spaces(refs), lang, cfg.tokenize)
        plain = (strip_spaces(hyps), strip_spaces(refs), tok)
    else:
        scores = score_all(hyps, refs, lang, cfg.tokenize, ts.segmented)
        plain = (hyps, refs, "none" if ts.segmented else tok)
    row["scores"] = [s.as_dict() for s in scores]
    # the share of outputs that say a span of 2+ tokens twice in a row (a decoder's loop), and of
    # the references (the language's own rate), in the tokens BLEU counts
    row["repeats"] = round(repetition(plain[0], plain[2]), 4)
    row["repeats_ref"] = round(repetition(plain[1], plain[2]), 4)
    log.info(
        "%s: %d sentences in %.1fs, %s | repeats %.1f %% (references %.1f %%)",
        name,
        len(src),
        secs,
        score_line(scores[0]),
        100 * row["repeats"],
        100 * row["repeats_ref"],
    )
    return row


def sweep_alpha(translator: Translator, cfg: EvaluateJob, sets: dict, lang: str, device) -> dict:
    """Beam search with each GNMT alpha on the first test set (a dev set): BLEU per alpha, the best last."""
    if cfg.search.method != SearchMethod.beam or cfg.search.length_penalty != LengthPenalty.gnmt:
        raise NmtError("alphas=[...] needs search=beam with search.length_penalty=gnmt")
    name, ts = next(iter(sets.items()))
    rows = []
    for alpha in cfg.alphas:
        translator.cfg = replace(cfg.search, alpha=alpha)
        row = evaluate_set(translator, name, ts, cfg, lang)
        rows.append({"alpha": alpha, **row})
    best = max(rows, key=lambda r: r["scores"][0]["score"])
    print(f"{'alpha':>6}{'BLEU':>8}   ({name}; {rows[0]['scores'][0]['signature']})")
    for r in rows:
        print(f"{r['alpha']:>6}{r['scores'][0]['score']:>8.2f}")
    print(f"best alpha: {best['alpha']} (BLEU {best['scores'][0]['score']:.2f})")
    return {
        "checkpoint": cfg.ckpt,
        "search": _search_dict(cfg.search),
        "hardware": hardware(device),
        "alpha_sweep": rows,
        "best_alpha": best["alpha"],
    }


def print_table(rows: list[dict]) -> None:
    seg = any(len(r["scores"]) == 3 for r in rows)
    head = f"{'test set':<26}{'sents':>7}{'BLEU':>8}{'chrF':>8}{'repeat%':>9}{'sent/s':>9}" + (
        f"{'BLEU seg':>10}" if seg else ""
    )
    print(head)
    print("-" * len(head))
    sigs: dict[str, str] = {}
    for r in rows:
        sc = r["scores"]
        main, chrf = (sc[1], sc[2]) if len(sc) == 3 else (sc[0], sc[1])
        rep = f"{100 * r['repeats']:.1f}" if "repeats" in r else "-"
        line = f"{r['test_set']:<26}{r['sentences']:>7}{main['score']:>8.2f}{chrf['score']:>8.2f}{rep:>9}{r['sentences_per_second']:>9.1f}"
        if seg:
            line += f"{sc[0]['score']:>10.2f}" if len(sc) == 3 else f"{'':>10}"
        print(line)
        for s in sc:
            sigs[s["signature"]] = s["metric"] + (
                " (BLEU seg: -tok none on the segmented text)" if "tok:none" in s["signature"] else ""
            )
    for sig, what in sigs.items():
        print(f"  {what}: {sig}")


def task(cfg: EvaluateJob) -> None:
    validate_evaluate(cfg)
    result = evaluate_checkpoint(cfg) if cfg.ckpt else evaluate_files(cfg)
    if cfg.output:
        out = Path(cfg.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
        log.info("results written to %s", out)


main = hydra_cli("evaluate", task, direct=True, quick_exit=True)

if __name__ == "__main__":
    main()
