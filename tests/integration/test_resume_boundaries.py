"""A run stopped for any reason, at an epoch's end or in its middle, resumes as if it never stopped.

The toy corpus here makes exactly 15 updates an epoch (1,500 pairs in batches of 100 sentences)
and validation runs every 15 updates, so validations land on an epoch's last update. The
uninterrupted reference trains 3 epochs (45 updates). Every stop reason is tried where it bites
hardest: at an epoch boundary (max_epochs, max_steps, Ctrl-C, patience), in the middle of an
epoch (max_steps, Ctrl-C) and after a time limit (max_time, wherever it falls).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.model.io import load_checkpoint
from tests.helpers import REPO, assert_same_run, stderr_lines, toy_workdir

pytestmark = pytest.mark.slow

KILL = REPO / "tests" / "killpoint.py"
EPOCH = 15  # updates in an epoch
ARGS = (
    "experiment=toy",
    "data.root=runs/toy/corpus",
    "model.dropout=0.1",  # dropout on: the random state matters
    "model.emb_dropout=0.1",
    "train.batch_type=sents",
    "train.batch_size=100",
    f"train.valid_every={EPOCH}",
    "train.log_every=5",
    "train.valid_max_sents=20",
    "train.keep_last=2",
    "train.keep_best=1",
)
END = f"train.max_steps={3 * EPOCH}"


def train(cwd: Path, run_dir: str, *extra: str, point: str = "none", n: int = 0) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(KILL), point, str(n), "--", *ARGS, f"run_dir={run_dir}", *extra]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, "\n".join(stderr_lines(proc)[-20:])


def stopped(cwd: Path, run_dir: str) -> dict:
    return load_checkpoint(cwd / run_dir / "checkpoints/last.pt")["state"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = toy_workdir(tmp_path_factory.mktemp("boundaries"), train=1500)
    train(cwd, "runs/whole", END)
    state = stopped(cwd, "runs/whole")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3 * EPOCH, 3, 0)
    return cwd


@pytest.mark.parametrize(
    ("first", "point", "n", "at", "boundary"),
    [
        (("train.max_epochs=1",), "none", 0, EPOCH, True),
        ((f"train.max_steps={EPOCH}",), "none", 0, EPOCH, True),
        ((f"train.max_steps={2 * EPOCH}",), "none", 0, 2 * EPOCH, True),
        ((END,), "sigint", EPOCH, EPOCH, True),
        ((f"train.max_steps={EPOCH + 7}",), "none", 0, EPOCH + 7, False),
        ((END,), "sigint", EPOCH + 7, EPOCH + 7, False),
    ],
    ids=[
        "max_epochs-at-the-end-of-epoch-1",
        "max_steps-at-the-end-of-epoch-1",
        "max_steps-at-the-end-of-epoch-2",
        "ctrl-c-at-the-end-of-epoch-1",
        "max_steps-mid-epoch",
        "ctrl-c-mid-epoch",
    ],
)
def test_a_stopped_run_resumes_like_an_uninterrupted_one(
    work: Path, first: tuple[str, ...], point: str, n: int, at: int, boundary: bool
) -> None:
    run = f"runs/{point}_{n}_{'_'.join(first).replace('=', '')}"
    train(work, run, *first, point=point, n=n)
    state = stopped(work, run)
    assert state["step"] == at and (state["batch_in_epoch"] == 0) == boundary, state
    train(work, run, END, "train.resume=true")
    if boundary:  # the same validations at the same steps: the whole run, file for file
        assert_same_run(work / run, work / "runs/whole")
    else:  # plus the validation at the stop: the same weights
        assert_same_weights(work / run, work / "runs/whole")


def test_a_run_stopped_by_patience_resumes_with_patience_off(work: Path) -> None:
    """Early stopping at an epoch's end (dev BLEU of the toy model stays 0 for its first
    validations), then resumed with the patience lifted: the run goes on as if never stopped."""
    run = "runs/patience"
    train(work, run, END, "train.patience=1", "train.valid_max_sents=1")
    state = stopped(work, run)
    assert state["step"] in (2 * EPOCH, 3 * EPOCH) and state["batch_in_epoch"] == 0, state
    train(work, run, END, "train.resume=true", "train.valid_max_sents=1")
    assert_same_weights(work / run, work / "runs/whole")


def test_a_run_stopped_by_its_time_limit_resumes_like_an_uninterrupted_one(work: Path) -> None:
    run = "runs/max_time"
    train(work, run, "train.max_time=0.002")  # 0.12 s: stops after the first few updates
    assert stopped(work, run)["step"] < 3 * EPOCH
    train(work, run, END, "train.max_time=0", "train.resume=true")
    assert_same_weights(work / run, work / "runs/whole")


def assert_same_weights(a: Path, b: Path) -> None:
    la, lb = load_checkpoint(a / "checkpoints/last.pt"), load_checkpoint(b / "checkpoints/last.pt")
    assert la["state"]["step"] == lb["state"]["step"]
    assert la["state"]["tokens"] == lb["state"]["tokens"]
    for name, w in lb["model"].items():
        assert torch.equal(la["model"][name], w), name


def test_sigint_is_what_stopped_it(work: Path) -> None:
    """The Ctrl-C cases above stop because of the signal, not a limit."""
    run = "runs/sigint_check"
    train(work, run, END, point="sigint", n=3)
    log = (work / run / "train.log").read_text()
    assert "SIGINT received" in log and "done (interrupted)" in log
