"""TensorBoard for a training run (``train.tensorboard=true``): the run's metric records and, at
each validation, the model in; event files under ``<run_dir>/tensorboard`` out.

Scalars: the training line's loss, perplexity, learning rate, gradient norm and target tokens/s
(``train/*``, at every log line) and the dev loss, perplexity and BLEU (``dev/*``, at every
validation), the same figures ``metrics.jsonl`` holds. Images: the attention of a few dev pairs,
the same ones at every validation (``attention/dev_line_N``), teacher-forced on the reference so
that every picture of a pair has the same axes and the alignment can be watched forming.

Resuming: a checkpoint is committed after its validation's events are written, and the events
are flushed at once, so what a killed run logged after its last checkpoint is on disk and will be
logged again by the resumed run. The resumed writer starts with a purge point at the step after
the checkpoint's (``SummaryWriter(purge_step=...)``, a SessionLog START event): TensorBoard drops
the older events from that step on, and each curve goes on without duplicates. A fresh run
removes the event files a run that never committed a checkpoint left behind (as it does
``metrics.jsonl``). Only rank 0 writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmt import NmtError
from nmt.data.store import EncodedSplit
from nmt.data.tokenizer import Tokenizer
from nmt.model.seq2seq import Seq2Seq
from nmt.search.forced import force

log = logging.getLogger(__name__)

LOG_DIR = "tensorboard"
EVENT_FILES = "events.out.tfevents.*"
# a metrics.jsonl record's kind and key -> TensorBoard tag
TAGS = {
    "train": {
        "loss": "train/loss",
        "ppl": "train/ppl",
        "lr": "train/lr",
        "grad_norm": "train/grad_norm",
        "tok_s": "train/tok_s",
    },
    "valid": {"dev_nll": "dev/loss", "dev_ppl": "dev/ppl", "dev_bleu": "dev/bleu"},
}
MAX_PICTURE_PIECES = 40  # longer pairs make pictures too large to read (and to send to a browser)


def summary_writer() -> type:
    """torch's ``SummaryWriter`` class, or a one-line error if TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise NmtError("train.tensorboard=true needs TensorBoard: pip install 'nmt[tensorboard]'") from None
    return SummaryWriter


def picture_pairs(dev: EncodedSplit, n: int) -> list[int]:
    """``n`` dev pairs spread evenly over the dev set (the same for every run on it), among those
    with both sides within ``MAX_PICTURE_PIECES`` (all pairs if fewer than ``n`` are)."""
    short = np.flatnonzero((dev.src_lens <= MAX_PICTURE_PIECES) & (dev.tgt_lens < MAX_PICTURE_PIECES))
    pool = short if len(short) >= n else np.arange(len(dev))
    if n <= 0 or len(pool) == 0:
        return []
    picks = np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(np.int64)
    return [int(pool[p]) for p in picks]


@dataclass
class PicturePair:
    line: int  # 1-based line in the dev files
    src: list[int]
    tgt: list[int]
    src_pieces: list[str]
    tgt_pieces: list[str]  # with EOS last: attention has one row per target piece and one for EOS


class Board:
    """Rank 0's TensorBoard writer: ``record`` takes metrics.jsonl's records, ``attention`` draws
    the pictures of a validation; both flush, so nothing logged is lost to a kill."""

    def __init__(
        self,
        run_dir: Path,
        first_step: int,
        dev: EncodedSplit,
        src_tok: Tokenizer,
        tgt_tok: Tokenizer,
        n: int,
    ) -> None:
        writer_class = summary_writer()
        self.dir = run_dir / LOG_DIR
        if first_step == 0:  # nothing committed: what is there belongs to no checkpoint
            for stale in self.dir.glob(EVENT_FILES):
                stale.unlink()
        # resumed: events from the step after the checkpoint on are the killed run's, logged again
        self.writer: Any = writer_class(str(self.dir), purge_step=first_step + 1 if first_step else None)
        self.pairs = [
            PicturePair(
                int(dev.lines[i]) + 1,
                dev.src(i).tolist(),
                dev.tgt(i).tolist(),
                src_tok.pieces(dev.src(i).tolist()),
                [*tgt_tok.pieces(dev.tgt(i).tolist()), "</s>"],
            )
            for i in picture_pairs(dev, n)
        ]
        self.scalar_seconds, self.picture_seconds, self.validations = 0.0, 0.0, 0

    def record(self, rec: dict) -> None:
        t0 = time.perf_counter()
        for key, tag in TAGS.get(rec.get("kind", ""), {}).items():
            if key in rec:
                self.writer.add_scalar(tag, rec[key], rec["step"])
        self.writer.flush()
        self.scalar_seconds += time.perf_counter() - t0

    def attention(self, model: Seq2Seq, step: int, device: torch.device) -> None:
        """The teacher-forced attention of the picture pairs under the model as it is now."""
        import matplotlib.pyplot as plt

        from nmt.introspect.plotting import attention_figure, japanese_rc

        if not self.pairs:
            return
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        forced = force(model, [p.src for p in self.pairs], [p.tgt for p in self.pairs], device)
        model.train(was_training)
        with plt.rc_context(japanese_rc()):
            for p, (_, att) in zip(self.pairs, forced):  # att: (target pieces + 1, source pieces)
                title = f"dev line {p.line}, step {step}"
                fig = attention_figure(p.src_pieces, p.tgt_pieces, att, title, target="reference")
                self.writer.add_figure(f"attention/dev_line_{p.line}", fig, step, close=True)
        self.writer.flush()
        self.picture_seconds += time.perf_counter() - t0
        self.validations += 1

    def close(self) -> None:
        self.writer.close()
        log.info(
            "tensorboard: %s | scalars %.2f s in all | attention pictures %.2f s per validation",
            self.dir,
            self.scalar_seconds,
            self.picture_seconds / max(self.validations, 1),
        )
