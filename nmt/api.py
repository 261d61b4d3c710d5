"""The Python API: a checkpoint (or several, as an ensemble) in, a ready ``Translator`` out.

    import nmt
    tr = nmt.load("runs/en_ja_small/checkpoints/best.pt")          # beam 5, as nmt-translate
    tr.translate("Where is the station?")                          # -> '駅はどこですか。'
    tr.translate(["I like green tea.", "Thank you."])              # -> a list, in order
    [t] = tr.translate_detailed(["I like green tea."])             # text, score, n-best, attention
    tr.translate_file("in.en", "out.ja")                           # one line out per line in
    nmt.load(["a.pt", "b.pt"], search={"beam_size": 8, "alpha": 1.0}, precision="fp32")

This is the code path of nmt-translate, nmt-evaluate and nmt-serve: they all call
``load_translator``. Reading checkpoints goes through ``nmt.model.io`` only; nothing here imports
the training package.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from nmt import NmtError
from nmt.checks import validate_search
from nmt.config import Precision, Quantize, SearchConfig, SearchMethod, conf_dir
from nmt.data.text import TextProcessor
from nmt.model.capture import CapturedModel
from nmt.model.ensemble import Ensemble
from nmt.model.io import load_model
from nmt.model.peek import text_processing
from nmt.model.quantize import quantize_int8
from nmt.runtime import resolve_device
from nmt.translator import Options, Translator

Checkpoints = str | Path | list[str] | list[Path] | tuple


def checkpoint_list(ckpt: Any) -> list[str]:
    """``ckpt=a.pt`` or ``ckpt=[a.pt,b.pt]`` (an ensemble) as a list of paths."""
    paths = [str(ckpt)] if isinstance(ckpt, (str, Path)) else [str(p) for p in ckpt or []]
    if not paths:
        raise NmtError("ckpt= names no checkpoint")
    return paths


def load_translator(
    ckpt: Checkpoints, device: torch.device, cfg: SearchConfig, options: Options | None = None
) -> tuple[Translator, dict]:
    """A Translator for one checkpoint or an ensemble of several (their vocabularies and text
    processing must agree), and the (first) checkpoint dict."""
    options = options or Options()
    if options.quantize == Quantize.int8 and options.precision == Precision.bf16:
        raise NmtError("quantize=int8 computes in int8 and float32: it does not combine with precision=bf16")
    paths = checkpoint_list(ckpt)
    loaded = [load_model(p, device) for p in paths]
    _, src_tok, tgt_tok, first = loaded[0]
    text_cfg = text_processing(first, paths[0])
    for path, (_, s, t, ck) in zip(paths[1:], loaded[1:]):
        if t.vocabulary() != tgt_tok.vocabulary():
            raise NmtError(
                f"{path}: its target vocabulary is not {paths[0]}'s: an ensemble needs the same vocabularies"
            )
        if s.vocabulary() != src_tok.vocabulary():
            raise NmtError(
                f"{path}: its source vocabulary is not {paths[0]}'s: an ensemble needs the same vocabularies"
            )
        if text_processing(ck, path) != text_cfg:
            raise NmtError(f"{path}: its text processing (data.src_text/tgt_text) is not {paths[0]}'s")
    models: list[Any] = [m for m, _, _, _ in loaded]
    if options.quantize == Quantize.int8:
        models = [quantize_int8(m, device) for m in models]
    if options.compile:
        models = [CapturedModel(m, device) for m in models]
    search_model = models[0] if len(models) == 1 else Ensemble(models)
    text = TextProcessor.from_data(text_cfg)
    return Translator(search_model, src_tok, tgt_tok, cfg, device, options, text), first


def search_config(search: str | SearchConfig | dict | None) -> SearchConfig:
    """A preset of conf/search ("beam", "greedy", "sample"), a SearchConfig, or a dict of values
    (on the beam preset, or on the preset named by its "method")."""
    if isinstance(search, SearchConfig):
        return search
    changes = dict(search) if isinstance(search, dict) else {}
    name = search if isinstance(search, str) else str(changes.get("method", "beam"))
    preset = conf_dir() / "search" / f"{name}.yaml"
    if not preset.is_file():
        raise NmtError(f"search={name!r}: no such preset (conf/search has beam, greedy, sample)")
    values = {**(yaml.safe_load(preset.read_text(encoding="utf-8")) or {}), **changes}
    cfg = _with_values(SearchConfig(), values, "search: unknown key(s)")
    cfg = replace(cfg, method=SearchMethod(cfg.method))
    validate_search(cfg)
    return cfg


def _with_values(obj: Any, values: dict, unknown_message: str) -> Any:
    """A copy of the dataclass ``obj`` with ``values`` set (enums from their names); unknown keys
    are refused with one line listing the known ones."""
    known = [f.name for f in fields(obj)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise NmtError(f"{unknown_message} {', '.join(unknown)}; known: {', '.join(known)}")
    for key, value in values.items():
        default = getattr(obj, key)
        if hasattr(default, "value") and not isinstance(value, type(default)):  # an enum: from its name
            value = type(default)(value)
        obj = replace(obj, **{key: value})
    return obj


def load(
    ckpt: Checkpoints,
    device: str = "auto",
    search: str | SearchConfig | dict | None = "beam",
    **options: Any,
) -> Translator:
    """A Translator for a checkpoint, or several as an ensemble.

    ``device``: "auto" (CUDA when present), "cpu", "cuda", "cuda:1". ``search``: a preset name, a
    SearchConfig or a dict of search values. ``options``: any field of ``nmt.translator.Options``
    (batch_size, max_input_len, on_bad_line, with_attention, keep_segmentation, replace_unk,
    precision, quantize, compile, ...), as strings or their enums.
    """
    opts = _with_values(Options(), options, "unknown option(s)")
    translator, _ = load_translator(ckpt, resolve_device(device), search_config(search), opts)
    return translator
