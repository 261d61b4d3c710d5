"""Checks of config values against their meaning, beyond what a type can express.

Hydra and the dataclasses in ``nmt.config`` reject unknown keys and wrong types; the ``validate_*``
functions here reject values that are well-typed but meaningless (a beam of 0, a negative length
penalty, dropout above 1, ...), each with one line naming the key, the value and what it must be.
Every tool calls the ones for its config before doing any work.
"""

from __future__ import annotations

import math

from nmt import NmtError
from nmt.config import (
    Attention,
    Bridge,
    DataConfig,
    EvaluateJob,
    LmJob,
    ModelConfig,
    SampleJob,
    Schedule,
    SearchConfig,
    SearchMethod,
    ServeJob,
    TokenizerConfig,
    TrainConfig,
    TranslateJob,
)

CJK_LANGS = ("ja", "zh", "ko")


def character_coverage(tok: TokenizerConfig, lang: str) -> float:
    if tok.character_coverage is not None:
        return tok.character_coverage
    return 0.9995 if lang in CJK_LANGS else 1.0


def _need(ok: bool, key: str, value: object, what: str) -> None:
    if not ok:
        raise NmtError(f"{key} must be {what}, got {value!r}")


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _key(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _at_least(prefix: str, cfg: object, low: float, *keys: str) -> None:
    for k in keys:
        v = getattr(cfg, k)
        _need(_number(v) and v >= low, _key(prefix, k), v, f">= {low:g}")


def _above(prefix: str, cfg: object, low: float, *keys: str) -> None:
    for k in keys:
        v = getattr(cfg, k)
        _need(_number(v) and v > low, _key(prefix, k), v, f"> {low:g}")


def _in(prefix: str, cfg: object, key: str, low: float, high: float, closed_high: bool = False) -> None:
    v = getattr(cfg, key)
    ok = _number(v) and low <= v and (v <= high if closed_high else v < high)
    _need(ok, _key(prefix, key), v, f"in [{low:g}, {high:g}{']' if closed_high else ')'}")


def validate_model(m: ModelConfig) -> None:
    """Checks that types cannot express; raises NmtError naming the keys."""
    _at_least("model", m, 1, "emb_dim", "enc_hidden", "enc_layers", "dec_hidden", "dec_layers")
    _at_least("model", m, 0, "attn_dim", "init_range")
    _in("model", m, "dropout", 0.0, 1.0)
    _in("model", m, "emb_dropout", 0.0, 1.0)
    _need(_number(m.forget_bias), "model.forget_bias", m.forget_bias, "a finite number")
    if m.attention == Attention.luong_dot and 2 * m.enc_hidden != m.dec_hidden:
        raise NmtError(
            f"model.attention=luong_dot needs 2*model.enc_hidden == model.dec_hidden "
            f"(got 2*{m.enc_hidden} != {m.dec_hidden}); use luong_general or change the sizes"
        )
    if m.bridge == Bridge.copy and (2 * m.enc_hidden != m.dec_hidden or m.enc_layers != m.dec_layers):
        raise NmtError(
            "model.bridge=copy needs 2*model.enc_hidden == model.dec_hidden and "
            "model.enc_layers == model.dec_layers; use bridge=learned"
        )


def validate_train(t: TrainConfig) -> None:
    _above("train", t, 0, "lr", "dist_timeout_min", "wait_timeout_min")
    _at_least("train", t, 1, "batch_size", "accum_steps", "valid_every", "log_every")
    _at_least("train", t, 0, "min_lr", "weight_decay", "clip_norm", "warmup_steps", "max_steps")
    _at_least("train", t, 0, "max_epochs", "max_time", "valid_max_sents", "patience", "keep_last")
    _at_least(
        "train",
        t,
        0,
        "keep_best",
        "num_threads",
        "sort_buckets",
        "plateau_patience",
        "max_shapes",
        "shape_multiple",
        "tensorboard_sentences",
    )
    _in("train", t, "label_smoothing", 0.0, 1.0)
    _in("train", t, "momentum", 0.0, 1.0)
    _in("train", t, "decay_fraction", 0.0, 1.0, closed_high=True)
    _need(
        _number(t.plateau_factor) and 0 < t.plateau_factor <= 1,
        "train.plateau_factor",
        t.plateau_factor,
        "in (0, 1]",
    )
    if len(t.betas) != 2 or not all(_number(b) and 0 <= b < 1 for b in t.betas):
        raise NmtError(f"train.betas must be two values in [0, 1), got {t.betas}")
    if t.schedule == Schedule.wsd and not (t.max_steps or t.max_time):
        raise NmtError("train.schedule=wsd decays over the budget: set train.max_steps or train.max_time")


def validate_data(d: DataConfig) -> None:
    _at_least("data", d, 1, "max_len", "max_len_ratio")
    _at_least("data", d, 0, "max_train_pairs")


def validate_tokenizer(t: TokenizerConfig) -> None:
    _at_least("tokenizer", t, 5, "vocab_size")
    for key in ("src_vocab_size", "tgt_vocab_size"):
        v = getattr(t, key)
        _need(isinstance(v, int) and (v == 0 or v >= 5), f"tokenizer.{key}", v, "0 (vocab_size) or >= 5")
    _at_least("tokenizer", t, 1, "input_sentence_size")
    if t.character_coverage is not None:
        _need(
            _number(t.character_coverage) and 0.9 <= t.character_coverage <= 1.0,
            "tokenizer.character_coverage",
            t.character_coverage,
            "in [0.9, 1] (or null: by language)",
        )


def validate_subwords(t: TrainConfig, tok: TokenizerConfig) -> None:
    """Subword sampling needs a model that has segmentations to sample: unigram or BPE."""
    _at_least("train", t, 0, "subword_alpha")
    _at_least("train", t, 1, "subword_workers")
    _need(
        t.subword_sides in ("src", "tgt", "both"), "train.subword_sides", t.subword_sides, "src, tgt or both"
    )
    _need(
        isinstance(t.subword_nbest, int) and t.subword_nbest != 0,
        "train.subword_nbest",
        t.subword_nbest,
        "-1 (all) or >= 1",
    )
    if t.subword_alpha > 0 and tok.model_type.value not in ("unigram", "bpe"):
        raise NmtError(
            f"train.subword_alpha={t.subword_alpha} samples segmentations, which a {tok.model_type.value} "
            "model does not have: use tokenizer=unigram or tokenizer=bpe"
        )
    if t.subword_alpha > 0 and tok.model_type.value == "bpe":
        _need(t.subword_alpha < 1, "train.subword_alpha", t.subword_alpha, "< 1 (BPE-dropout: a probability)")


def validate_search(s: SearchConfig) -> None:
    """Every search value against its meaning: a negative alpha would break the beam's exact
    stopping bound, a negative coverage weight would reward leaving the source untranslated."""
    _at_least("search", s, 1, "beam_size")
    if not (
        isinstance(s.nbest, int) and 1 <= s.nbest <= (s.beam_size if s.method == SearchMethod.beam else 1)
    ):
        raise NmtError(
            f"search.nbest must be between 1 and the beam size ({s.beam_size} with method=beam, "
            f"1 otherwise), got {s.nbest}"
        )
    _at_least("search", s, 0, "alpha", "coverage_penalty", "max_len_a", "max_len_b", "min_len")
    _at_least("search", s, 0, "no_repeat_ngram", "top_k")
    _above("search", s, 0, "temperature")
    if s.max_len_a == 0 and s.max_len_b < 1:
        raise NmtError("search.max_len_a * src_len + search.max_len_b must allow at least one piece")


def validate_translate(j: TranslateJob) -> None:
    validate_search(j.search)
    _at_least("", j, 1, "batch_size", "chunk_lines", "max_input_len")
    _at_least("", j, 0, "max_sentences", "num_threads", "workers")


def validate_serve(j: ServeJob) -> None:
    validate_search(j.search)
    _at_least("", j, 1, "max_sentences", "max_input_len", "batch_words", "queue_limit", "max_body_bytes")
    _at_least("", j, 0, "wait_ms", "num_threads", "workers", "max_input_chars")
    _above("", j, 0, "timeout_s", "body_timeout_s", "head_timeout_s")
    if j.queue_limit < j.max_sentences:
        raise NmtError(
            f"queue_limit={j.queue_limit} is below max_sentences={j.max_sentences}: a request of "
            "max_sentences would never fit in the queue (raise queue_limit or lower max_sentences)"
        )
    _need(isinstance(j.port, int) and 0 <= j.port <= 65535, "port", j.port, "in [0, 65535]")
    if j.ckpt is not None and j.models:
        raise NmtError("give ckpt=FILE (one model) or models=[{id: 100, ckpt: FILE}, ...], not both")
    if j.ckpt is None and not j.models and j.lm is None:
        raise NmtError(
            "nothing to serve: give ckpt=FILE (one model), models=[{id: 100, ckpt: FILE}, ...] "
            "or lm=FILE (a character language model)"
        )
    _at_least("", j, 1, "max_beam")
    _need(
        j.search.beam_size <= j.max_beam,
        "search.beam_size",
        j.search.beam_size,
        f"at most max_beam={j.max_beam}",
    )
    ids = [m.id for m in j.models]
    if len(set(ids)) != len(ids):
        raise NmtError(f"models: model ids must differ, got {ids}")


def validate_lm(j: LmJob) -> None:
    _at_least("model", j.model, 1, "emb_dim", "hidden", "layers")
    _in("model", j.model, "dropout", 0.0, 1.0)
    t = j.train
    _at_least("train", t, 2, "seq_len", "vocab_size")
    _at_least("train", t, 1, "batch", "eval_every")
    _above("train", t, 0, "lr")
    _at_least("train", t, 0, "clip_norm", "max_time", "max_steps")
    _in("train", t, "valid_fraction", 0.0, 0.5)
    _at_least("", j, 0, "max_chars")
    if not (t.max_time or t.max_steps):
        raise NmtError("set train.max_time or train.max_steps")


def validate_sample(j: SampleJob) -> None:
    _at_least("", j, 1, "length", "samples")
    _above("", j, 0, "temperature")
    _at_least("", j, 0, "top_k")


def validate_evaluate(j: EvaluateJob) -> None:
    validate_search(j.search)
    _at_least("", j, 1, "batch_size", "max_input_len")
    _at_least("", j, 0, "max_sentences", "num_threads", "first", "sample", "workers")
    if j.first and j.sample:
        raise NmtError(
            f"first={j.first} and sample={j.sample}: give one (the first N lines, or N spread over the set)"
        )
    for a in j.alphas:
        _need(_number(a) and a >= 0, "alphas", j.alphas, "values >= 0")
