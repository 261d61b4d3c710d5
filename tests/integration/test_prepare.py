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
    mtime = (data / "train/part-00000/src.ids").stat().st_mtime_ns
    second = run_cli("prepare", "experiment=toy", cwd=cwd)
    assert second.returncode == 0
    assert "reusing" in second.stderr.decode()
    assert (data / "train/part-00000/src.ids").stat().st_mtime_ns == mtime


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


def test_two_corpora_mixed_by_weight_train_and_are_counted(tmp_path: Path) -> None:
    """kyoto-style: a main corpus and a small one up-weighted; the log, the summary and the card
    say what each gave and how many pairs an epoch drew from it."""
    from nmt.data.toy import write_corpus

    cwd = toy_workdir(tmp_path, train=400, dev=20, test=20)
    write_corpus(cwd / "runs" / "toy" / "corpus2", train=40, dev=5, test=5)
    (cwd / "runs/toy/corpus/small").symlink_to(cwd / "runs/toy/corpus2/toy", target_is_directory=True)
    mix = "data.train_corpora=[{name:main,corpus:toy},{name:small,corpus:small,weight:1.0}]"
    args = ("experiment=toy", "train.max_steps=6", "train.valid_every=6", "train.batch_size=256", mix)
    proc = run_cli("train", *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    log = proc.stderr.decode()
    assert "corpus main: 400 pairs, 220 drawn an epoch (0.55 passes)" in log
    assert "corpus small: 40 pairs, 220 drawn an epoch (5.50 passes)" in log
    summary = json.loads((cwd / "runs/toy/summary.json").read_text())
    assert summary["corpora"]["small"] == {"pairs": 40, "weight": 1.0, "drawn_per_epoch": 220}
    card = run_cli("card", "run_dir=runs/toy", cwd=cwd)
    assert card.returncode == 0, card.stderr.decode()[-2000:]
    md = (cwd / "runs/toy/card.md").read_text()
    assert "| small | 40 | 40 | none | 1.0 | 220 |" in md and "| main | 400 | 400 | none | 1.0 | 220 |" in md
