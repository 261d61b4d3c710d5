"""Training survives the world misbehaving: kills at any moment, full disks, read-only folders,
a second writer, and resumes that end exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.model.io import load_checkpoint
from tests.helpers import REPO, assert_one_line_error, assert_same_run, run_cli, stderr_lines, toy_workdir

pytestmark = pytest.mark.slow

KILL = REPO / "tests" / "killpoint.py"
CORPUS = "data.root=runs/toy/corpus"
# dropout on (the random state matters), 3 validations, pruning to one newest + one best file
ARGS = (
    "experiment=toy",
    CORPUS,
    "model.dropout=0.1",
    "model.emb_dropout=0.1",
    "train.batch_size=512",
    "train.max_steps=15",
    "train.valid_every=5",
    "train.log_every=5",
    "train.valid_max_sents=20",
    "train.keep_last=1",
    "train.keep_best=1",
)


def train(cwd: Path, run_dir: str, *extra: str, point: str = "none", n: int = 0, preexec=None):  # noqa: ANN001, ANN201
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(KILL), point, str(n), "--", *ARGS, f"run_dir={run_dir}", *extra]
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, timeout=600, check=False, preexec_fn=preexec
    )


def assert_clean(run: Path) -> None:
    """No temporary file anywhere, and every checkpoint loads."""
    ckpts = run / "checkpoints"
    assert not [p.name for p in ckpts.iterdir() if ".tmp" in p.name]
    for p in ckpts.glob("*.pt"):
        load_checkpoint(p)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy working directory with one uninterrupted reference run in runs/whole."""
    cwd = toy_workdir(tmp_path_factory.mktemp("reliability"), train=1500)
    proc = train(cwd, "runs/whole")
    assert proc.returncode == 0, "\n".join(stderr_lines(proc)[-20:])
    return cwd


# --------------------------------------------------------------------------- killed at any moment


@pytest.mark.parametrize(
    ("point", "n"),
    [("step", 7), ("step", 12), ("validation", 2), ("write", 1), ("write", 4), ("commit", 2)],
    ids=[
        "mid-step",
        "mid-step-after-a-save",
        "mid-validation",
        "mid-first-write",
        "mid-last-pt-write",
        "mid-commit",
    ],
)
def test_killed_at_any_moment_resume_ends_like_an_uninterrupted_run(work: Path, point: str, n: int) -> None:
    run = f"runs/kill_{point}_{n}"
    killed = train(work, run, point=point, n=n)
    assert killed.returncode == -signal.SIGKILL, "\n".join(stderr_lines(killed)[-20:])
    resumed = train(work, run, "train.resume=true")
    assert resumed.returncode == 0, "\n".join(stderr_lines(resumed)[-20:])
    assert_clean(work / run)
    assert_same_run(work / run, work / "runs/whole")


# --------------------------------------------------------------------------- full disk, read-only folders


def test_a_full_disk_ends_in_one_line_and_keeps_the_last_good_checkpoint(work: Path) -> None:
    run = work / "runs/full"
    assert train(work, "runs/full", "train.max_steps=5").returncode == 0
    # between the two sizes: the step file still fits, last.pt (with Adam's moments) no longer does
    sizes = [(run / "checkpoints" / name).stat().st_size for name in ("step_0000005.pt", "last.pt")]
    assert sizes[0] < sizes[1]
    limit = sum(sizes) // 2

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = train(work, "runs/full", "train.max_steps=10", "train.resume=true", preexec=small_files)
    line = assert_one_line_error(proc, "nmt-train", only_line=False)
    assert (
        str(Path("runs/full/checkpoints/last.pt")) in line and "File too large" in line and "intact" in line
    )
    assert load_checkpoint(run / "checkpoints/last.pt")["state"]["step"] == 5
    assert_clean(run)
    assert not (run / "checkpoints/step_0000010.pt").exists()  # written, but never committed
    again = train(work, "runs/full", "train.max_steps=10", "train.resume=true")
    assert again.returncode == 0, "\n".join(stderr_lines(again)[-20:])
    assert load_checkpoint(run / "checkpoints/last.pt")["state"]["step"] == 10


def test_a_read_only_checkpoints_folder_ends_in_one_line_naming_the_file(work: Path, read_only) -> None:  # noqa: ANN001
    run = work / "runs/ro"
    assert train(work, "runs/ro", "train.max_steps=5").returncode == 0
    before = (run / "checkpoints/last.pt").read_bytes()
    read_only(run / "checkpoints")
    proc = train(work, "runs/ro", "train.max_steps=10", "train.resume=true")
    line = assert_one_line_error(proc, "nmt-train", only_line=False)
    assert "runs/ro/checkpoints/" in line
    assert any(why in line for why in ("Read-only file system", "not permitted", "Permission denied"))
    assert (run / "checkpoints/last.pt").read_bytes() == before


def test_a_read_only_run_directory_is_refused_in_one_line(work: Path, read_only) -> None:  # noqa: ANN001
    folder = read_only(work / "runs/ro_whole")
    proc = train(work, "runs/ro_whole")
    line = assert_one_line_error(proc, "nmt-train", only_line=False)
    assert str(Path("runs/ro_whole")) in line and "cannot write" in line
    assert not list(folder.iterdir())


# --------------------------------------------------------------------------- one writer


def test_a_second_trainer_is_refused_while_the_first_runs(work: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(KILL), "none", "0", "--", *ARGS, "run_dir=runs/busy", "train.max_steps=100000"]
    first = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert first.stderr is not None
    try:
        for line in first.stderr:
            if b" step 5 | " in line:
                break
        for verb in ("train", "prepare"):
            second = run_cli(verb, *ARGS, "run_dir=runs/busy", "train.resume=true", cwd=work)
            line = assert_one_line_error(second, f"nmt-{verb}", only_line=False)
            assert "runs/busy is in use by nmt-train (pid" in line and str(first.pid) in line
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    # once the first has stopped, the folder is free again
    again = train(work, "runs/busy", "train.resume=true", "train.max_steps=12")
    assert again.returncode == 0, "\n".join(stderr_lines(again)[-20:])


def test_a_fresh_run_into_a_used_run_directory_is_refused(work: Path) -> None:
    proc = train(work, "runs/whole")
    line = assert_one_line_error(proc, "nmt-train", only_line=False)
    assert "already holds a training run" in line and "train.resume=true" in line


# --------------------------------------------------------------------------- every stop reason through a resume


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (("train.max_steps=10",), "max_steps=10"),
        (("train.max_steps=0", "train.max_epochs=1"), "max_epochs=1"),
        (("train.max_steps=0", "train.max_time=0.02", "train.valid_every=1000"), "max_time=0.02 min"),
        (
            ("train.max_steps=300", "train.patience=1", "train.valid_every=2", "train.valid_max_sents=1"),
            "no better",
        ),
    ],
    ids=["steps", "epochs", "time", "patience"],
)
def test_a_finished_run_resumed_trains_no_further(work: Path, extra: tuple[str, ...], reason: str) -> None:
    name = f"runs/stop_{reason.split('=')[0].split()[0]}"
    run = work / name
    first = train(work, name, *extra)
    assert first.returncode == 0, "\n".join(stderr_lines(first)[-20:])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_reason"].startswith(reason)
    metrics, files = (run / "metrics.jsonl").read_bytes(), sorted((run / "checkpoints").iterdir())
    again = train(work, name, *extra, "train.resume=true")
    assert again.returncode == 0, "\n".join(stderr_lines(again)[-20:])
    assert "resumed from" in again.stderr.decode()
    after = json.loads((run / "summary.json").read_text())
    assert (after["steps"], after["epochs"]) == (summary["steps"], summary["epochs"])
    assert after["stop_reason"].startswith(reason)
    assert (run / "metrics.jsonl").read_bytes() == metrics  # nothing logged twice
    assert sorted((run / "checkpoints").iterdir()) == files
    assert load_checkpoint(run / "checkpoints/last.pt")["state"]["step"] == summary["steps"]
