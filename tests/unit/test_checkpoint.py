"""nmt.training.checkpoint: atomic saves, strict loads, the keeper's retention, averaging."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nmt import NmtError
from nmt.data.tokenizer import Tokenizer
from nmt.model.seq2seq import Seq2Seq
from nmt.training import checkpoint as ckpt_mod
from nmt.training.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointKeeper,
    average_checkpoints,
    load_checkpoint,
    load_model,
    model_config,
    save_checkpoint,
)
from tests.helpers import checkpoint_payload, tiny_model_config


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# --------------------------------------------------------------------------- save / load


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(3.0)}, "step": 7})
    ck = load_checkpoint(path)
    assert ck["format"] == FORMAT and ck["version"] == VERSION and ck["step"] == 7
    assert torch.equal(ck["model"]["w"], torch.arange(3.0))
    assert leftovers(path.parent) == []


def test_crash_during_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def crash(obj: object, f, *args: object, **kwargs: object) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert leftovers(tmp_path) == []


def test_crash_during_the_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(obj: object, f, *args: object, **kwargs: object) -> None:
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c.pt", {"step": 1})
    assert list(tmp_path.iterdir()) == []


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="checkpoint not found") as e:
        load_checkpoint(tmp_path / "none.pt")
    assert str(tmp_path / "none.pt") in str(e.value)


def test_non_torch_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("just some text\n")
    with pytest.raises(NmtError, match="not a readable nmt checkpoint") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_truncated_checkpoint_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NmtError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_torch_file_that_is_not_an_nmt_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(NmtError, match="not an nmt checkpoint") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    torch.save(torch.zeros(3), path)  # not even a dict
    with pytest.raises(NmtError, match="not an nmt checkpoint"):
        load_checkpoint(path)


def test_wrong_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1, "nmt_version": "9.9"}, path)
    with pytest.raises(NmtError, match=f"version {VERSION + 1}") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


class Evil:
    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("echo pwned",))


def test_pickled_code_is_never_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": VERSION, "x": Evil()}, path)
    with pytest.raises(NmtError, match="not a readable nmt checkpoint"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- models


@pytest.fixture
def saved_model(tmp_path: Path, toy_tokenizers: tuple[Tokenizer, Tokenizer]) -> tuple[Path, Seq2Seq]:
    src_tok, tgt_tok = toy_tokenizers
    cfg = tiny_model_config(tie_embeddings=True, init_range=0.3)
    torch.manual_seed(0)
    model = Seq2Seq(cfg, len(src_tok), len(tgt_tok)).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, checkpoint_payload(model, cfg, src_tok, tgt_tok))
    return path, model


def test_reloaded_model_gives_identical_outputs(
    saved_model: tuple[Path, Seq2Seq], toy_tokenizers: tuple[Tokenizer, Tokenizer]
) -> None:
    path, model = saved_model
    loaded, src_tok, tgt_tok, ck = load_model(path, torch.device("cpu"))
    assert not loaded.training
    assert src_tok.proto == toy_tokenizers[0].proto and tgt_tok.proto == toy_tokenizers[1].proto
    assert loaded.output.weight.data_ptr() == loaded.decoder.embed.weight.data_ptr()  # still tied
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    src_lens = torch.tensor([4, 2])
    tgt = torch.tensor([[2, 5, 6], [2, 7, 0]])
    with torch.no_grad():
        assert torch.equal(loaded(src, src_lens, tgt), model(src, src_lens, tgt))
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_model_config_comes_back_as_the_dataclass(saved_model: tuple[Path, Seq2Seq]) -> None:
    cfg = model_config(load_checkpoint(saved_model[0]))
    assert cfg == tiny_model_config(tie_embeddings=True, init_range=0.3)


def test_checkpoint_with_a_config_this_version_cannot_read(
    tmp_path: Path, saved_model: tuple[Path, Seq2Seq]
) -> None:
    ck = load_checkpoint(saved_model[0])
    ck["config"]["model"]["attention"] = "transformer"
    path = tmp_path / "odd.pt"
    save_checkpoint(path, {k: v for k, v in ck.items() if k not in ("format", "version", "nmt_version")})
    with pytest.raises(NmtError, match="model config does not fit") as e:
        load_model(path, torch.device("cpu"))
    assert str(path) in str(e.value)


def test_checkpoint_whose_weights_do_not_fit_its_config(
    tmp_path: Path, saved_model: tuple[Path, Seq2Seq]
) -> None:
    ck = load_checkpoint(saved_model[0])
    ck["config"]["model"]["dec_hidden"] = 32
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, {k: v for k, v in ck.items() if k not in ("format", "version", "nmt_version")})
    with pytest.raises(NmtError, match="damaged or incompatible checkpoint") as e:
        load_model(path, torch.device("cpu"))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- keeper


def test_keeper_keeps_newest_and_best_and_links_best(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=2, keep_best=1)
    metrics = {1: 1.0, 2: 5.0, 3: 2.0, 4: 3.0, 5: 0.0}
    best_so_far = float("-inf")
    for step, m in metrics.items():
        is_best = m > best_so_far
        best_so_far = max(best_so_far, m)
        keeper.save(step, {"step": step, "model": {"w": torch.tensor([float(step)])}}, m, is_best)
    files = sorted(p.name for p in tmp_path.glob("step_*.pt"))
    assert files == ["step_0000002.pt", "step_0000004.pt", "step_0000005.pt"]  # best 1 + newest 2
    assert [e["step"] for e in keeper.index()] == [2, 4, 5]
    assert os.path.samefile(tmp_path / "best.pt", tmp_path / "step_0000002.pt")
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 2
    assert keeper.select(2, by="last") == [tmp_path / "step_0000005.pt", tmp_path / "step_0000004.pt"]
    assert keeper.select(5, by="best") == [tmp_path / f"step_000000{s}.pt" for s in (2, 4, 5)]
    assert leftovers(tmp_path) == []


def test_best_survives_when_its_step_file_is_pruned(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=1, keep_best=0)
    keeper.save(1, {"step": 1}, 9.0, is_best=True)
    keeper.save(2, {"step": 2}, 1.0, is_best=False)
    assert not (tmp_path / "step_0000001.pt").exists()
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 1


def test_keeper_keeping_no_step_files_still_keeps_best(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=0, keep_best=0)
    keeper.save(1, {"step": 1}, 1.0, is_best=True)
    keeper.save(2, {"step": 2}, 0.5, is_best=False)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 1
    assert not list(tmp_path.glob("step_*.pt"))


def test_keeper_resaving_a_step_replaces_its_entry(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(tmp_path, keep_last=3, keep_best=3)
    keeper.save(1, {"step": 1}, 1.0, is_best=True)
    keeper.save(1, {"step": 1}, 2.0, is_best=True)
    assert keeper.index() == [{"step": 1, "file": "step_0000001.pt", "metric": 2.0}]


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


def test_average_of_nothing() -> None:
    with pytest.raises(NmtError, match="no checkpoints"):
        average_checkpoints([])
