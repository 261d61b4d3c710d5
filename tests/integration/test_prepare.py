"""nmt-prepare: validates the corpus with one-line errors, caches what it prepared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run_cli, toy_workdir

pytestmark = pytest.mark.slow


def corpus_file(cwd: Path, name: str) -> Path:
    return cwd / "runs" / "toy" / "corpus" / "toy" / name


def test_prepare_then_reuse(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path, train=300, dev=20, test=20)
    first = run_cli("prepare", "experiment=toy", cwd=cwd)
    assert first.returncode == 0, first.stderr.decode()
    data = cwd / "runs" / "toy" / "data"
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["counts"]["train"]["read"] == 300 and manifest["counts"]["dev"]["kept"] == 20
    assert (cwd / "runs" / "toy" / "prepare.log").is_file()
    mtime = (data / "train.npz").stat().st_mtime_ns
    second = run_cli("prepare", "experiment=toy", cwd=cwd)
    assert second.returncode == 0
    assert "reusing" in second.stderr.decode()
    assert (data / "train.npz").stat().st_mtime_ns == mtime


def test_unequal_line_counts(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path, train=300, dev=20, test=20)
    tgt = corpus_file(cwd, "dev.tgt")
    tgt.write_text(tgt.read_text() + "one line more\n")
    proc = run_cli("prepare", "experiment=toy", cwd=cwd)
    line = assert_one_line_error(proc, "nmt-prepare", only_line=False)
    assert "dev.src" in line and "dev.tgt" in line and "20 lines" in line and "21 lines" in line


def test_invalid_utf8(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path, train=300, dev=20, test=20)
    src = corpus_file(cwd, "train.src")
    lines = src.read_bytes().split(b"\n")
    lines[41] = lines[41] + b" \xe9t\xe9"
    src.write_bytes(b"\n".join(lines))
    proc = run_cli("prepare", "experiment=toy", cwd=cwd)
    line = assert_one_line_error(proc, "nmt-prepare", only_line=False)
    assert "train.src:42:" in line and "invalid UTF-8" in line
    assert not (cwd / "runs" / "toy" / "data" / "manifest.json").exists()


def test_missing_corpus(tmp_path: Path) -> None:
    proc = run_cli("prepare", "experiment=toy", f"data.root={tmp_path / 'nowhere'}", cwd=tmp_path)
    line = assert_one_line_error(proc, "nmt-prepare", only_line=False)
    assert "nowhere" in line and "no corpus folder found" in line


def test_unknown_key_names_it(tmp_path: Path) -> None:
    proc = run_cli("prepare", "experiment=toy", "tokenizer.vocab=100", cwd=tmp_path)
    assert proc.returncode != 0
    assert "tokenizer.vocab" in proc.stderr.decode()
