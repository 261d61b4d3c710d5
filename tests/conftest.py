"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from nmt.data.tokenizer import Tokenizer
from tests.helpers import run_cli, train_toy_tokenizers


def pytest_configure(config: pytest.Config) -> None:
    # The test models are tiny: a second thread buys nothing, and on a busy 2-core machine
    # OpenMP threads waiting for each other make small matrix products 50x slower.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test its own ``NMT_CACHE_DIR`` (decisions remembered by nmt.search.precision), so no
    test sees another's, nor the user's ~/.cache."""
    monkeypatch.setenv("NMT_CACHE_DIR", str(tmp_path_factory.mktemp("nmt_cache")))


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], Path]]:
    """``read_only(folder)`` makes a folder nobody can write into, root included, and returns it:
    a read-only bind mount (EROFS, as on a read-only disk) where root may mount, else the
    immutable attribute (chattr +i), else (not root) plain permissions; skips where none works.
    Undone at the end of the test."""
    undo: list[list[str]] = []

    def writable(folder: Path) -> bool:
        try:
            (folder / ".probe").touch()
        except OSError:
            return False
        (folder / ".probe").unlink()
        return True

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        f = str(folder)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(["chmod", "755", f])
        elif _ok(["mount", "--bind", f, f]):
            undo.append(["umount", f])
            _ok(["mount", "-o", "remount,ro,bind", f])
        elif _ok(["chattr", "+i", f]):
            undo.append(["chattr", "-i", f])
        if writable(folder):
            pytest.skip("cannot make a read-only folder on this machine")
        return folder

    yield make
    for cmd in reversed(undo):
        _ok(cmd)


def _ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="session")
def toy_tokenizers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, Tokenizer]:
    """Source and target SentencePiece models trained on toy pairs."""
    return train_toy_tokenizers(tmp_path_factory.mktemp("toy_spm"))


@dataclass
class ToyRun:
    """The toy recipe trained once per session (``nmt-train experiment=toy``) in ``root``."""

    root: Path  # working directory of the CLI runs

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / "toy"

    @property
    def corpus(self) -> Path:
        """data.root of the toy data config."""
        return self.run_dir / "corpus"

    @property
    def best(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> ToyRun:
    """Generate the toy corpus with ``python -m nmt.data.toy`` and train the toy recipe (800 steps).

    Trained once per test session: under pytest-xdist the first worker to get here trains it in the
    session's shared temporary folder while the others wait on a lock, then all read the same run
    (tests only read it, or copy it first). That saves one or more ~1-minute trainings per run."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process
        return _train_toy(tmp_path_factory.mktemp("toy_recipe"))
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N: this session's, common to its workers
    root, done = shared / "toy_recipe", shared / "toy_recipe.done"
    with FileLock(str(shared / "toy_recipe.lock")):
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed attempt may have left
            _train_toy(root)
            done.touch()
    return ToyRun(root)


def _train_toy(root: Path) -> ToyRun:
    run = ToyRun(root)
    root.mkdir(parents=True, exist_ok=True)
    gen = subprocess.run(
        [sys.executable, "-m", "nmt.data.toy", str(run.corpus)], cwd=root, capture_output=True, check=False
    )
    assert gen.returncode == 0, gen.stderr.decode()
    proc = run_cli("train", "experiment=toy", "train.max_steps=800", cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return run
