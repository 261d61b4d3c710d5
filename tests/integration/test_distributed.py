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
from tests.helpers import REPO

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


# the plateau schedule cuts the learning rate at every validation here (BLEU of one dev sentence
# stays 0 this early), with dropout on: the processes must stay one model through cuts and a resume
PLATEAU = [
    "experiment=toy",
    "train.valid_every=3",
    "train.log_every=3",
    "train.batch_size=512",
    "train.schedule=plateau",
    "train.plateau_patience=1",
    "train.valid_max_sents=1",
    "model.dropout=0.1",
    "model.emb_dropout=0.1",
]


def _torchrun(tmp_path: Path, run_dir: str, *extra: str) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    kill = str(REPO / "tests" / "killpoint.py")
    _run(
        [*torchrun, kill, "none", "0", "--dump-weights", "--", *PLATEAU, f"run_dir={run_dir}", *extra],
        tmp_path,
    )


def _ranks(folder: Path) -> list[dict[str, torch.Tensor]]:
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_processes_stay_one_model_through_learning_rate_cuts_and_a_resume(tmp_path: Path) -> None:
    for run in ("whole", "split"):
        write_corpus(tmp_path / run / "corpus", train=1500, dev=50, test=50)
    _torchrun(tmp_path, "whole", "train.max_steps=12")
    log = (tmp_path / "whole/train.log").read_text()
    assert log.count("learning rate cut") >= 2
    whole = _ranks(tmp_path / "whole")
    for name, w in whole[0].items():  # both processes hold the same weights, bit for bit
        assert torch.equal(w, whole[1][name]), name

    _torchrun(tmp_path, "split", "train.max_steps=6")
    _torchrun(tmp_path, "split", "train.max_steps=12", "train.resume=true")
    split = _ranks(tmp_path / "split")
    for rank in (0, 1):  # every process resumed with its own random state: as if never stopped
        for name, w in whole[rank].items():
            assert torch.equal(split[rank][name], w), (rank, name)
    last = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    ranks = last["state"]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])


def test_a_validation_longer_than_the_collective_timeout_does_not_stop_training(tmp_path: Path) -> None:
    """Collectives time out after 1.2 s; rank 0 validates for 3 s, twice, while rank 1 waits."""
    write_corpus(tmp_path / "slow" / "corpus", train=1500, dev=50, test=50)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    kill = str(REPO / "tests" / "killpoint.py")
    args = [*PLATEAU, "run_dir=slow", "train.max_steps=6", "train.dist_timeout_min=0.02"]
    _run([*torchrun, kill, "slow", "3", "--", *args], tmp_path)
    log = (tmp_path / "slow/train.log").read_text()
    assert "validation at step 6" in log and "done (max_steps=6)" in log
