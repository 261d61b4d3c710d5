"""nmt-train with train.tensorboard=true: a run killed after logging past its last checkpoint and
resumed shows every curve once, step by step, and the attention pictures of every validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from tests.helpers import REPO, assert_one_line_error, stderr_lines, toy_workdir  # noqa: E402

pytestmark = pytest.mark.slow

KILL = REPO / "tests" / "killpoint.py"
# a checkpoint every 2 updates, a log line (and its events) every update
ARGS = (
    "experiment=toy",
    "data.root=runs/toy/corpus",
    "train.batch_size=512",
    "train.max_steps=8",
    "train.valid_every=2",
    "train.log_every=1",
    "train.valid_max_sents=20",
    "train.tensorboard=true",
)
SCALARS = {
    "train/loss",
    "train/ppl",
    "train/lr",
    "train/grad_norm",
    "train/tok_s",
    "dev/loss",
    "dev/ppl",
    "dev/bleu",
}


def train(cwd: Path, *extra: str, point: str = "none", n: int = 0) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(KILL), point, str(n), "--", *ARGS, "run_dir=runs/tb", *extra]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=300, check=False)


def events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_a_killed_and_resumed_run_shows_each_curve_once(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    run = cwd / "runs/tb"
    killed = train(cwd, point="step", n=6)  # in update 6: checkpoints at 2 and 4, step 5 logged
    assert killed.returncode == -signal.SIGKILL, "\n".join(stderr_lines(killed)[-20:])
    assert [e.step for e in events(run).Scalars("train/loss")] == [1, 2, 3, 4, 5]  # step 5 will come again

    resumed = train(cwd, "train.resume=true")
    assert resumed.returncode == 0, "\n".join(stderr_lines(resumed)[-20:])
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per session

    acc = events(run)
    assert set(acc.Tags()["scalars"]) == SCALARS
    for tag in SCALARS:
        want = [2, 4, 6, 8] if tag.startswith("dev/") else list(range(1, 9))
        assert [e.step for e in acc.Scalars(tag)] == want, tag
    # the curves are the run's metrics.jsonl (which resumes exactly: tests/integration/test_reliability.py)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_loss = [r["loss"] for r in records if r["kind"] == "train"]
    dev_bleu = [r["dev_bleu"] for r in records if r["kind"] == "valid"]
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(train_loss, rel=1e-6)
    assert [e.value for e in acc.Scalars("dev/bleu")] == pytest.approx(dev_bleu, rel=1e-6)
    images = acc.Tags()["images"]
    assert len(images) == 3 and all(tag.startswith("attention/dev_line_") for tag in images)
    for tag in images:
        assert [i.step for i in acc.Images(tag)] == [2, 4, 6, 8], tag


def test_without_tensorboard_installed_training_fails_at_start_in_one_line(tmp_path: Path) -> None:
    cwd = toy_workdir(tmp_path)
    no_tensorboard = (
        "import sys; sys.modules['tensorboard'] = None; "
        f"sys.argv = ['nmt-train', *{list(ARGS)!r}, 'run_dir=runs/tb']; "
        "from nmt.cli.train import main; main()"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", no_tensorboard],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    line = assert_one_line_error(proc, "nmt-train")
    assert line.endswith("train.tensorboard=true needs TensorBoard: pip install 'nmt[tensorboard]'")
    assert not (cwd / "runs/tb/data").exists()  # before preparing the data
