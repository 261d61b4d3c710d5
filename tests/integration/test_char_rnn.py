"""nmt-lm, nmt-sample and nmt-cells as a user runs them: train a character model on a text file,
sample from it, look inside its cells; bad input ends in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

TEXT = 'She said "come (now)" and left.\nHe said "no" (twice).\n' * 150


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("char_rnn")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    proc = run_cli(
        "lm", f"text={root / 'text.txt'}", f"run_dir={root / 'run'}", "train.max_time=0", "train.max_steps=120",
        "train.eval_every=40", "train.seq_len=32", "train.batch=8", "model.hidden=32", "model.layers=1",
        "device=cpu", cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert "bits per character" in proc.stderr.decode()
    return root


def test_lm_trains_and_records_bits_per_character(lm: Path) -> None:
    summary = json.loads((lm / "run" / "summary.json").read_text())
    assert summary["steps"] == 120 and summary["best_valid_bpc"] < 3.0
    assert (lm / "run" / "lm.pt").is_file()


def test_sample_continues_the_prime_at_each_temperature(lm: Path) -> None:
    outs = []
    for t in ("0.5", "1.5"):
        proc = run_cli("sample", f"ckpt={lm / 'run' / 'lm.pt'}", "prime='She said'", "length=80",
                       f"temperature={t}", "device=cpu", cwd=lm)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()
        outs.append(proc.stdout.decode())
        assert outs[-1].startswith("She said") and len(outs[-1].rstrip("\n")) == len("She said") + 80
    assert outs[0] != outs[1]


def test_cells_reports_units_and_writes_the_page(lm: Path) -> None:
    page = lm / "quotes.html"
    proc = run_cli("cells", f"ckpt={lm / 'run' / 'lm.pt'}", f"input={lm / 'text.txt'}", "feature=quotes",
                   "max_chars=600", f"output={page}", "top=3", "device=cpu", cwd=lm)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.strip().startswith("unit ")]
    assert len(lines) == 3 and all("r = " in ln for ln in lines)
    assert page.read_text(encoding="utf-8").count("<span") == 600


@pytest.mark.parametrize(
    ("verb", "args", "message"),
    [
        ("sample", ["temperature=0"], "temperature"),
        ("sample", ["ckpt=nothing.pt"], "nothing.pt"),
        ("cells", ["feature=vowels"], "choose one of"),
        ("lm", ["text=missing.txt"], "missing.txt"),
    ],
)
def test_bad_input_ends_in_one_line(lm: Path, verb: str, args: list[str], message: str) -> None:
    base = {
        "sample": [f"ckpt={lm / 'run' / 'lm.pt'}"],
        "cells": [f"ckpt={lm / 'run' / 'lm.pt'}", f"input={lm / 'text.txt'}", f"output={lm / 'x.html'}"],
        "lm": [f"run_dir={lm / 'run2'}", "train.max_steps=5"],
    }[verb]
    proc = run_cli(verb, *base, *args, "device=cpu", cwd=lm)
    assert message in assert_one_line_error(proc, f"nmt-{verb}")
