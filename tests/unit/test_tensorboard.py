"""TensorBoard: metric records under their tags, attention pictures of fixed dev pairs, stale
events removed on a fresh start and purged on a resume, a one-line error without TensorBoard."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from nmt import NmtError  # noqa: E402
from nmt.config import DataConfig, TrainConfig, TrainJob  # noqa: E402
from nmt.data.store import EncodedSplit  # noqa: E402
from nmt.data.tokenizer import Tokenizer  # noqa: E402
from nmt.model.seq2seq import Seq2Seq  # noqa: E402
from nmt.training.tensorboard import MAX_PICTURE_PIECES, Board, picture_pairs, summary_writer  # noqa: E402
from tests.helpers import tiny_model_config  # noqa: E402


def read(log_dir: Path) -> EventAccumulator:
    """The events as TensorBoard shows them (purged where a resumed writer said so)."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def steps(acc: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def dev_split(lengths: list[int], vocab: int, seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, vocab, size=n).tolist() for n in lengths]
    tgt = [rng.integers(4, vocab, size=max(1, n - 1)).tolist() for n in lengths]
    return EncodedSplit.from_lists(src, tgt, list(range(len(lengths))))


def train_record(step: int, loss: float) -> dict:
    return {
        "kind": "train",
        "step": step,
        "loss": loss,
        "ppl": 2.0,
        "lr": 1e-3,
        "grad_norm": 0.5,
        "tok_s": 9.0,
    }


# --------------------------------------------------------------------------- which pairs are drawn


def test_picture_pairs_are_spread_over_dev_fixed_and_short_enough_to_read() -> None:
    lengths = [5] * 30
    lengths[0] = lengths[29] = MAX_PICTURE_PIECES + 1  # too long: the picks move to their neighbours
    dev = dev_split(lengths, 30)
    picks = picture_pairs(dev, 3)
    assert picks == [1, 15, 28]  # first and last short pair, and one in the middle
    assert picture_pairs(dev, 3) == picks  # the same at every validation (no randomness)
    assert picture_pairs(dev, 0) == []
    assert picture_pairs(dev_split([5, 6], 30), 3) == [0, 1]  # fewer pairs than asked: all of them
    assert picture_pairs(dev_split([60, 70], 30), 1) == [0]  # none short: drawn anyway


# --------------------------------------------------------------------------- what is written


def test_records_go_under_their_tags_and_pictures_show_each_pair_at_each_validation(
    tmp_path: Path, toy_tokenizers: tuple[Tokenizer, Tokenizer]
) -> None:
    src_tok, tgt_tok = toy_tokenizers
    torch.manual_seed(0)
    model = Seq2Seq(tiny_model_config(), len(src_tok), len(tgt_tok))
    model.train()
    dev = dev_split([4, 7, 9, 3, 6], min(len(src_tok), len(tgt_tok)))
    board = Board(tmp_path, 0, dev, src_tok, tgt_tok, 2)
    for step in (1, 2):
        board.record(train_record(step, 3.0 - step))
    board.record({"kind": "valid", "step": 2, "dev_nll": 1.5, "dev_ppl": 4.5, "dev_bleu": 12.5, "time": 1.0})
    board.attention(model, 2, torch.device("cpu"))
    board.attention(model, 4, torch.device("cpu"))
    board.close()
    assert model.training  # left as it was found

    acc = read(tmp_path / "tensorboard")
    assert sorted(acc.Tags()["scalars"]) == sorted(
        [
            "train/loss",
            "train/ppl",
            "train/lr",
            "train/grad_norm",
            "train/tok_s",
            "dev/loss",
            "dev/ppl",
            "dev/bleu",
        ]
    )
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(1, 2.0), (2, 1.0)]
    assert [(e.step, e.value) for e in acc.Scalars("dev/bleu")] == [(2, 12.5)]
    assert [(e.step, e.value) for e in acc.Scalars("dev/loss")] == [(2, 1.5)]
    # pairs 0 and 4 of the dev set: dev lines 1 and 5
    assert sorted(acc.Tags()["images"]) == ["attention/dev_line_1", "attention/dev_line_5"]
    for tag in acc.Tags()["images"]:
        images = acc.Images(tag)
        assert [i.step for i in images] == [2, 4]
        assert all(i.encoded_image_string.startswith(b"\x89PNG") and i.width > 100 for i in images)


def test_a_fresh_start_removes_stale_events_and_a_resume_purges_what_followed_the_checkpoint(
    tmp_path: Path, toy_tokenizers: tuple[Tokenizer, Tokenizer]
) -> None:
    src_tok, tgt_tok = toy_tokenizers
    dev = dev_split([4], min(len(src_tok), len(tgt_tok)))
    log_dir = tmp_path / "tensorboard"

    stale = Board(tmp_path, 0, dev, src_tok, tgt_tok, 0)  # a run that never committed a checkpoint
    stale.record(train_record(1, 9.0))
    stale.close()
    fresh = Board(tmp_path, 0, dev, src_tok, tgt_tok, 0)
    for step in range(1, 6):  # steps 1-5 logged, the checkpoint at step 4, killed during step 6
        fresh.record(train_record(step, float(step)))
    fresh.close()
    assert [e.value for e in read(log_dir).Scalars("train/loss")] == [1, 2, 3, 4, 5]  # no 9: removed

    resumed = Board(tmp_path, 4, dev, src_tok, tgt_tok, 0)  # from the checkpoint at step 4
    for step in (5, 6):
        resumed.record(train_record(step, 10.0 * step))
    resumed.close()
    events = read(log_dir).Scalars("train/loss")
    assert [(e.step, e.value) for e in events] == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 50), (6, 60)]


# --------------------------------------------------------------------------- without TensorBoard


@pytest.fixture
def no_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import tensorboard`` fails, as where it is not installed (until the test ends)."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    for name in [m for m in sys.modules if m.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)


def test_without_tensorboard_training_stops_at_once_with_the_command_to_install_it(
    tmp_path: Path, no_tensorboard: None
) -> None:
    with pytest.raises(
        NmtError, match=r"^train.tensorboard=true needs TensorBoard: pip install 'nmt\[tensorboard\]'$"
    ):
        summary_writer()
    from nmt.training.trainer import Trainer

    # the data does not exist: the error names TensorBoard, so it came before preparing the data
    job = TrainJob(
        data=DataConfig(
            name="none", root=str(tmp_path / "nowhere"), corpus="none", src_lang="en", tgt_lang="ja"
        ),
        train=TrainConfig(tensorboard=True),
    )
    with pytest.raises(NmtError, match="needs TensorBoard"):
        Trainer(job, tmp_path / "run")
    assert not (tmp_path / "run").exists()
