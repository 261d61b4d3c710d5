"""nmt.training.checkpoint: the keeper's retention, its crash-safe commits, averaging."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from nmt import NmtError
from nmt.model.io import load_checkpoint, save_checkpoint
from nmt.training.checkpoint import CheckpointKeeper, average_checkpoints


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def json_index(folder: Path) -> list[dict]:
    return json.loads((folder / "index.json").read_text())


def commit(keeper: CheckpointKeeper, step: int, metric: float, is_best: bool) -> dict:
    """What the trainer does: the step file, then (last.pt records the result), then apply."""
    record = keeper.save_step(
        step, {"step": step, "model": {"w": torch.tensor([float(step)])}}, metric, is_best
    )
    keeper.apply(record)
    return record


# --------------------------------------------------------------------------- keeper


def test_keeper_keeps_newest_and_best_and_links_best(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=2, keep_best=1)
    metrics = {1: 1.0, 2: 5.0, 3: 2.0, 4: 3.0, 5: 0.0}
    best_so_far = float("-inf")
    for step, m in metrics.items():
        is_best = m > best_so_far
        best_so_far = max(best_so_far, m)
        commit(keeper, step, m, is_best)
    files = sorted(p.name for p in tmp_path.glob("step_*.pt"))
    assert files == ["step_0000002.pt", "step_0000004.pt", "step_0000005.pt"]  # best 1 + newest 2
    assert [e["step"] for e in keeper.index()] == [2, 4, 5]
    assert os.path.samefile(tmp_path / "best.pt", tmp_path / "step_0000002.pt")
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 2
    assert keeper.select(2, by="last") == [tmp_path / "step_0000005.pt", tmp_path / "step_0000004.pt"]
    assert keeper.select(5, by="best") == [tmp_path / f"step_000000{s}.pt" for s in (2, 4, 5)]
    assert leftovers(tmp_path) == []


def test_best_is_kept_whatever_keep_best_says(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=1, keep_best=0)
    commit(keeper, 1, 9.0, is_best=True)
    commit(keeper, 2, 1.0, is_best=False)
    commit(keeper, 3, 2.0, is_best=False)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_0000001.pt", "step_0000003.pt"]
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 1


def test_keeper_keeping_no_step_files_still_keeps_best(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=0, keep_best=0)
    commit(keeper, 1, 1.0, is_best=True)
    commit(keeper, 2, 0.5, is_best=False)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 1
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_0000001.pt"]  # best.pt's own


def test_keeper_resaving_a_step_replaces_its_entry(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=3, keep_best=3)
    commit(keeper, 1, 1.0, is_best=True)
    commit(keeper, 1, 2.0, is_best=True)
    assert keeper.index() == [{"step": 1, "file": "step_0000001.pt", "metric": 2.0}]


def test_a_step_written_but_never_committed_is_removed(tmp_path: Path) -> None:
    """Killed after the step file, before last.pt: on resume the old record is applied again."""
    keeper = CheckpointKeeper(tmp_path, keep_last=5, keep_best=5)
    committed = commit(keeper, 1, 1.0, is_best=True)
    keeper.save_step(2, {"step": 2}, 5.0, is_best=True)  # ... and the process dies here
    assert (tmp_path / "step_0000002.pt").is_file()
    CheckpointKeeper(tmp_path, 5, 5).apply(committed)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_0000001.pt"]
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 1
    assert [e["step"] for e in json_index(tmp_path)] == [1]


def test_a_commit_killed_before_it_was_applied_is_completed(tmp_path: Path) -> None:
    """Killed after last.pt recorded the new best, before best.pt and index.json followed."""
    keeper = CheckpointKeeper(tmp_path, keep_last=1, keep_best=1)
    commit(keeper, 1, 1.0, is_best=True)
    record = keeper.save_step(2, {"step": 2}, 5.0, is_best=True)  # last.pt would hold `record`
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 1  # not yet switched
    CheckpointKeeper(tmp_path, 1, 1).apply(record)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 2
    assert [e["step"] for e in json_index(tmp_path)] == [2]
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_0000002.pt"]


def test_applying_a_record_twice_changes_nothing(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=2, keep_best=1)
    record = {}
    for step, m in ((1, 3.0), (2, 1.0), (3, 2.0)):
        record = commit(keeper, step, m, is_best=step == 1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    keeper.apply(record)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_temporary_files_of_a_killed_writer_are_cleaned(tmp_path: Path) -> None:
    commit(CheckpointKeeper(tmp_path, 1, 1), 1, 1.0, is_best=True)
    names = [".last.pt.tmp1234", ".step_0000002.pt.tmp99", ".best.pt.tmp", "index.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"half")
    assert CheckpointKeeper(tmp_path, 1, 1).clean_temporary() == sorted(names)
    assert leftovers(tmp_path) == [] and (tmp_path / "step_0000001.pt").is_file()


def test_average_of_two_checkpoints(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    wa, wb = torch.randn(3, 2), torch.randn(3, 2)
    save_checkpoint(a, {"step": 10, "model": {"w": wa, "n": torch.tensor(3)}, "config": {"k": "a"}})
    save_checkpoint(b, {"step": 20, "model": {"w": wb, "n": torch.tensor(4)}, "config": {"k": "b"}})
    avg = average_checkpoints([a, b])
    torch.testing.assert_close(avg["model"]["w"], (wa + wb) / 2)
    assert avg["model"]["w"].dtype == torch.float32
    assert int(avg["model"]["n"]) == 4  # integers are taken from the newest, not averaged
    assert avg["step"] == 20 and avg["config"] == {"k": "b"}
    assert avg["averaged_from"] == [str(a), str(b)]
    out = tmp_path / "avg.pt"
    save_checkpoint(out, avg)  # the result is a checkpoint again
    torch.testing.assert_close(load_checkpoint(out)["model"]["w"], (wa + wb) / 2)


def test_average_refuses_checkpoints_of_different_runs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    save_checkpoint(a, {"step": 1, "model": {"w": torch.zeros(3)}, "spm": {"src": b"x", "tgt": b"y"}})
    save_checkpoint(b, {"step": 2, "model": {"w": torch.zeros(3)}, "spm": {"src": b"x", "tgt": b"z"}})
    with pytest.raises(NmtError, match="not from the same run"):
        average_checkpoints([a, b])


def test_average_of_nothing() -> None:
    with pytest.raises(NmtError, match="no checkpoints"):
        average_checkpoints([])
