"""nmt-average, nmt-card and nmt-inspect on the trained toy run: the tools a recipe ends with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import ToyRun
from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_copy(toy_run: ToyRun, tmp_path: Path) -> Path:
    """A private copy of the toy run, so the tools can write into it."""
    run = tmp_path / "run"
    shutil.copytree(toy_run.run_dir, run, ignore=shutil.ignore_patterns("corpus"))
    return run


def test_average_of_the_best_checkpoints_translates_like_a_checkpoint(
    toy_run: ToyRun, run_copy: Path, tmp_path: Path
) -> None:
    # The toy task is learnt suddenly, somewhere between updates 400 and 800 depending on the
    # CPU's rounding: the second-best of the shared run's checkpoints may be half-trained. 200
    # updates more make the two best both trained ones (800 and 1,000).
    more = ("train", "experiment=toy", f"run_dir={run_copy}", f"data.root={toy_run.corpus}")
    proc = run_cli(*more, "train.resume=true", "train.max_steps=1000", cwd=toy_run.root)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    proc = run_cli("average", f"run_dir={run_copy}", "k=2", "by=best", cwd=toy_run.root)
    assert proc.returncode == 0, proc.stderr.decode()
    avg = run_copy / "checkpoints" / "avg_best2.pt"
    payload = torch.load(avg, map_location="cpu", weights_only=True)
    best = torch.load(run_copy / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert payload["model"].keys() == best["model"].keys()
    assert any(
        not torch.equal(payload["model"][k], best["model"][k]) for k in best["model"]
    )  # really averaged

    out = tmp_path / "scores.json"
    proc = run_cli(
        "evaluate",
        f"ckpt={avg}",
        "data=toy",
        f"data.root={toy_run.corpus}",
        "search=greedy",
        f"output={out}",
        cwd=toy_run.root,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(out.read_text())["results"][0]["scores"][0]["score"] > 80  # averaging two good models


def test_average_of_a_run_without_checkpoints(toy_run: ToyRun, tmp_path: Path) -> None:
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    proc = run_cli("average", f"run_dir={tmp_path / 'empty'}", cwd=toy_run.root)
    assert "empty" in assert_one_line_error(proc, "nmt-average", only_line=False)


def _evaluate_into(run: Path, toy_run: ToyRun, name: str, *args: str) -> None:
    proc = run_cli(
        "evaluate",
        f"ckpt={run / 'checkpoints' / 'best.pt'}",
        "data=toy",
        f"data.root={toy_run.corpus}",
        f"output={run / 'eval' / name}",
        *args,
        cwd=toy_run.root,
    )
    assert proc.returncode == 0, proc.stderr.decode()


def test_card_gathers_scores_sweeps_curves_and_commands_into_the_readme(
    toy_run: ToyRun, run_copy: Path, tmp_path: Path
) -> None:
    _evaluate_into(run_copy, toy_run, "0_dev_alphas.json", "search=beam", "alphas=[0.0,1.0]", "first=20")
    _evaluate_into(run_copy, toy_run, "1_beam.json", "search=beam", f"hyp_dir={run_copy / 'eval' / 'beam'}")
    (run_copy / "commands.txt").write_text("nmt-train experiment=toy\n")
    readme = tmp_path / "recipe" / "README.md"
    readme.parent.mkdir()
    readme.write_text("# toy\n\nintro\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\ntail text\n")

    for _ in range(2):  # a second card replaces the block, it does not add one
        proc = run_cli(
            "card", f"run_dir={run_copy}", "title='toy: card test'", f"readme={readme}", cwd=toy_run.root
        )
        assert proc.returncode == 0, proc.stderr.decode()

    text = readme.read_text()
    assert text.startswith("# toy\n\nintro\n") and text.rstrip().endswith("tail text")
    assert "old" not in text and text.count("<!-- results:begin -->") == 1
    assert "### Results card: toy: card test" in text
    assert "for best.pt, chosen on toy_test" in text and "α=0.0:" in text and "α=1.0:" in text
    [row] = [line for line in text.splitlines() if line.startswith("| best.pt | beam 5")]
    assert "| toy_test | 200 |" in row
    assert "nrefs:1" in text  # signatures
    assert "nmt-train experiment=toy" in text  # the commands
    assert "| source | reference | nmt |" in text  # examples from the test set
    assert (readme.parent / "curves.png").read_bytes().startswith(PNG_MAGIC)

    card = json.loads((run_copy / "card.json").read_text())
    assert card["summary"]["steps"] == 800 and len(card["examples"]) == 5
    assert (run_copy / "card.md").read_text().strip() in text
    assert (run_copy / "curves.png").read_bytes().startswith(PNG_MAGIC)


def test_card_of_a_folder_that_is_not_a_run(toy_run: ToyRun, tmp_path: Path) -> None:
    proc = run_cli("card", f"run_dir={tmp_path}", cwd=toy_run.root)
    assert "not a finished run" in assert_one_line_error(proc, "nmt-card")
    proc = run_cli("card", f"run_dir={tmp_path / 'missing'}", cwd=toy_run.root)
    assert "no such run directory" in assert_one_line_error(proc, "nmt-card")


def test_inspect_traces_the_models_own_translation(toy_run: ToyRun, tmp_path: Path) -> None:
    src = (toy_run.corpus / "toy" / "test.src").read_text().splitlines()[0]
    ref = (toy_run.corpus / "toy" / "test.tgt").read_text().splitlines()[0]
    out, att = tmp_path / "cells.png", tmp_path / "attention.png"
    proc = run_cli(
        "inspect", f"ckpt={toy_run.best}", f"text='{src}'", f"output={out}", "units=8",
        f"attention_png={att}", cwd=toy_run.root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert att.read_bytes().startswith(PNG_MAGIC) and b"missing from font" not in proc.stderr
    stdout = proc.stdout.decode()
    assert f"target: {ref}" in stdout  # the toy model translates its test set perfectly
    assert "layer 1:" in stdout and "forget gate" in stdout
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_inspect_of_empty_text(toy_run: ToyRun, tmp_path: Path) -> None:
    proc = run_cli(
        "inspect", f"ckpt={toy_run.best}", "text=''", f"output={tmp_path / 'x.png'}", cwd=toy_run.root
    )
    assert "empty" in assert_one_line_error(proc, "nmt-inspect")
