"""nmt.structured and nmt.cli.compose: the command lines composed without Hydra give exactly the job
Hydra and OmegaConf give, and every line they cannot read alike is left to Hydra (None)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from collections.abc import Iterator
from enum import Enum

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.cli.common import to_job
from nmt.cli.compose import compose_simple
from nmt.config import SCHEMAS, ModelConfig, conf_dir, register_configs
from nmt.structured import Missing, Unsupported, build

# The one-shot tools whose configs compose without Hydra (nmt-evaluate's data group has defaults
# of its own, so Hydra composes it), with what each command line needs before it composes.
MANDATORY = {
    "translate": ["ckpt=a.pt"],
    "serve": ["ckpt=a.pt"],
    "sample": ["ckpt=a.pt"],
    "average": ["run_dir=runs/x"],
    "card": ["run_dir=runs/x"],
    "inspect": ["ckpt=a.pt", "text=hello"],
    "cells": ["ckpt=a.pt", "input=a.txt"],
    "lm": ["text=a.txt"],
}
DIRECT = list(MANDATORY)


@pytest.fixture(scope="module", autouse=True)
def hydra_context() -> Iterator[None]:
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield


def by_hydra(name: str, overrides: list[str]) -> object:
    return to_job(compose(config_name=name, overrides=overrides))


def scalar_overrides(schema: type, prefix: str = "") -> Iterator[str]:
    """One override per scalar field of the schema, with a value unlike its default."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        hint, key = hints[f.name], f"{prefix}{f.name}"
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        base = args[0] if optional and len(args) == 1 else hint
        if dataclasses.is_dataclass(base):
            yield from scalar_overrides(base, f"{key}.")  # type: ignore[arg-type]
        elif isinstance(base, type) and issubclass(base, Enum):
            yield f"{key}={list(base.__members__)[-1]}"
        elif base is bool:
            yield f"{key}={'false' if f.default is True else 'true'}"
        elif base is int:
            yield f"{key}=7"
        elif base is float:
            yield f"{key}=0.25"
        elif base is str:
            yield f"{key}=some/where_else.txt"
        if optional:
            yield f"{key}=null"


def _config_of(name: str) -> type:
    return SCHEMAS[f"{name}_schema"]


@pytest.mark.parametrize("name", DIRECT)
def test_plain_command_lines_compose_as_hydra_does(name: str) -> None:
    base = MANDATORY[name]
    job = compose_simple(name, base)
    assert job is not None, f"nmt-{name}: left to Hydra"
    assert job == by_hydra(name, base)


@pytest.mark.parametrize("name", DIRECT)
def test_every_scalar_field_set_on_the_command_line_reads_as_hydra_reads_it(name: str) -> None:
    checked = 0
    for override in scalar_overrides(_config_of(name)):
        key = override.split("=")[0]
        if any(m.split("=")[0] == key for m in MANDATORY[name]):
            continue
        line = [*MANDATORY[name], override]
        try:
            expected = by_hydra(name, line)
        except Exception:  # noqa: BLE001  (Hydra refuses it: the fast path must leave it to Hydra)
            assert compose_simple(name, line) is None, line
            continue
        got = compose_simple(name, line)
        assert got is not None, f"{line}: left to Hydra, though Hydra reads it"
        assert got == expected, line
        checked += 1
    assert checked >= 3  # every tool has at least three scalar settings Hydra accepts


@pytest.mark.parametrize(
    "line",
    [
        ["ckpt=runs/x/checkpoints/best.pt", "search=greedy", "search.beam_size=3", "max_sentences=64"],
        ["ckpt=a.pt", "search=beam", "search.alpha=1", "search.max_len_a=1e-1", "precision=bf16"],
        ["ckpt=a.pt", "quantize=int8", "num_threads=-1", "device=cuda:0", "input=my%file.en"],
        ["ckpt=a.pt", "processed=True", "keep_segmentation=FALSE", "progress=null", "output="],
        ["ckpt=a.pt", "search.stop=first_k", "search.seed=+5", "format=jsonl"],
    ],
)
def test_translate_command_lines(line: list[str]) -> None:
    got = compose_simple("translate", line)
    assert got is not None and got == by_hydra("translate", line)


@pytest.mark.parametrize(
    "line",
    [
        [],  # ckpt is mandatory: Hydra's path names it
        ["ckpt=a.pt", "search.beam_size=abc"],
        ["ckpt=a.pt", "search.beam_size=007"],
        ["ckpt=a.pt", "search.alpha=x"],
        ["ckpt=a.pt", "output=123"],  # Hydra reads a number here
        ["ckpt=a.pt", "input=true"],
        ["ckpt=1.5"],
        ["ckpt=a.pt", "nokey=1"],
        ["ckpt=a.pt", "search.nokey=1"],
        ["ckpt=a.pt", "search.beam_size=3,5"],  # a sweep
        ["ckpt=a.pt", "+foo=1"],
        ["ckpt=a.pt", "~output"],
        ["ckpt=[a.pt,b.pt]"],
        ["ckpt=a.pt", "search=nosuchfile"],
        ["ckpt=a.pt", "format=nosuch"],
        ["ckpt=a.pt", "processed=yes"],
        ["ckpt=a.pt", "search.method=null"],
    ],
)
def test_what_it_cannot_read_alike_is_left_to_hydra(line: list[str]) -> None:
    assert compose_simple("translate", line) is None


def test_an_ensemble_and_the_missing_checkpoint_still_work_through_hydra() -> None:
    assert by_hydra("translate", ["ckpt=[a.pt,b.pt]"]).ckpt == ["a.pt", "b.pt"]


def test_model_config_from_a_checkpoint_matches_omegaconf() -> None:
    saved = {"cell": "gru", "emb_dim": 64, "attention": "bahdanau", "forget_bias": 2, "input_feeding": False}
    expected = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), saved))
    assert build(ModelConfig, saved) == expected
    full = OmegaConf.to_container(OmegaConf.structured(ModelConfig()), enum_to_str=True)
    assert build(ModelConfig, full) == ModelConfig()


@pytest.mark.parametrize(
    ("saved", "error"),
    [
        ({"cell": "transformer"}, Unsupported),
        ({"emb_dim": "big"}, Unsupported),
        ({"no_such_key": 1}, Unsupported),
        ({"emb_dim": "???"}, Missing),
        ({"emb_dim": "${x}"}, Unsupported),
    ],
)
def test_bad_checkpoint_model_configs_are_refused(saved: dict, error: type) -> None:
    with pytest.raises(error):
        build(ModelConfig, saved)


def test_translate_imports_neither_hydra_nor_omegaconf() -> None:
    code = (
        "import sys, nmt.cli.translate, nmt.model.io\n"
        "from nmt.cli.compose import compose_simple\n"
        "assert compose_simple('translate', ['ckpt=a.pt']) is not None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hydra', 'omegaconf', 'antlr4')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
