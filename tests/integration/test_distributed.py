"""Multi-process training (torchrun, gloo on CPU) matches one process on the same global batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.data.toy import write_corpus

pytestmark = pytest.mark.slow

COMMON = [
    "experiment=toy",
    "train.max_steps=12",
    "train.valid_every=12",
    "train.log_every=4",
    "train.batch_size=512",
]


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_two_processes_match_one_process_with_accumulation(tmp_path: Path) -> None:
    for run in ("ddp", "single"):
        write_corpus(tmp_path / run / "corpus", train=1500, dev=50, test=50)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"]
    _run([*torchrun, "-m", "nmt.cli.train", *COMMON, "run_dir=ddp"], tmp_path)
    _run([sys.executable, "-m", "nmt.cli.train", *COMMON, "run_dir=single", "train.accum_steps=2"], tmp_path)

    ddp = torch.load(tmp_path / "ddp/checkpoints/last.pt", weights_only=True)
    single = torch.load(tmp_path / "single/checkpoints/last.pt", weights_only=True)
    assert ddp["state"]["step"] == single["state"]["step"] == 12
    for name, w in single["model"].items():
        torch.testing.assert_close(ddp["model"][name], w, rtol=1e-5, atol=1e-6, msg=name)
    # rank 0 alone writes the log: one line per logged step
    log = (tmp_path / "ddp/train.log").read_text()
    assert sum(" step 4 | " in line for line in log.splitlines()) == 1
    assert sum("validation at step 12" in line for line in log.splitlines()) == 1
    assert "2 processes x 1 accumulated" in log
    shutil.rmtree(tmp_path / "ddp/data")
