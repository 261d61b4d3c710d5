"""Starting, resuming and committing a training run's checkpoints (a mixin of ``Trainer``).

A run directory holds at most one run. ``train.resume=true`` continues it from ``last.pt``: the
weights, the optimizer and the run's state (``nmt.training.state``: counters, schedule, data
order, every process's random state and its log figures since the last log line), so the run
ends with the same weights and metrics as if it had never stopped (on a CPU, bit for bit). What a killed run left half done is repaired first: the
checkpoint record of ``last.pt`` is applied again (``CheckpointKeeper.apply``), step files it does
not know are removed, and ``metrics.jsonl`` is cut back to what was written before that save.
Without ``train.resume=true``, a run directory that already holds a run is refused.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from nmt import NmtError
from nmt.model.io import load_checkpoint, save_checkpoint
from nmt.training.progress import fmt_time
from nmt.training.state import upgrade

log = logging.getLogger(__name__)


class Checkpointing:
    """Needs the ``Trainer`` attributes: cfg, tc, run_dir, dist, device, data, model, optimizer,
    state (``nmt.training.state.TrainState``: everything else a resume needs), keeper."""

    def commit(self, payload: dict, metric: float, is_best: bool, ranks: list, metrics_bytes: int) -> None:
        """Save a validation: the step file, then last.pt (the commit point), then the keeper's links."""
        record = self.keeper.save_step(self.state.step, payload, metric, is_best)
        try:
            save_checkpoint(
                self.keeper.dir / "last.pt",
                {
                    **payload,
                    "optimizer": self.optimizer.state_dict(),
                    "state": self.state.state_dict(ranks),
                    "keeper": record,
                    "metrics_bytes": metrics_bytes,
                },
            )
        except NmtError:
            with contextlib.suppress(NmtError):  # remove the step file that was not committed
                self.keeper.apply({"index": self.keeper.entries, "best": self.keeper.best})
            raise
        self.keeper.apply(record)

    def _start(self, path: Path) -> None:
        """Continue from last.pt (train.resume=true), or start afresh where nothing was committed."""
        if self.tc.resume and path.is_file():
            self._resume(path)
            return
        if path.is_file():
            step = load_checkpoint(path).get("step", "?")
            raise NmtError(
                f"{self.run_dir} already holds a training run (checkpoints/last.pt at step {step}): continue it "
                "with train.resume=true, or train into another run_dir"
            )
        if self.tc.resume:
            log.info("train.resume=true: %s does not exist: starting from scratch", path)
        if self.dist.main:  # whatever a run that never committed a validation left behind
            self.keeper.apply({"index": [], "best": None})
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)

    def _resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        if "optimizer" not in ckpt:
            raise NmtError(f"{path}: has no training state to resume from")
        if ckpt.get("spm") != {"src": self.data.src_tok.proto, "tgt": self.data.tgt_tok.proto}:
            raise NmtError(
                f"{path}: was trained with other vocabularies than {self.run_dir / 'data'} holds now "
                "(the corpus or tokenizer settings changed); resume with the run's own settings"
            )
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise NmtError(
                f"{path}: does not fit the configured model ({str(e).splitlines()[0]}); "
                "resume with the same model settings"
            ) from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state.load_state_dict(upgrade(ckpt), self.dist.rank, self.dist.world, self.cfg.seed, self.device)
        if self.dist.main:
            record = ckpt.get("keeper") or {"index": self.keeper.index(), "best": None}
            self.keeper.apply(record)  # repairs a save that was killed before it finished
            if "metrics_bytes" in ckpt:  # drop what was logged after the save
                truncate(self.run_dir / "metrics.jsonl", ckpt["metrics_bytes"])
        log.info(
            "resumed from %s: step %d, epoch %d, %s trained",
            path,
            self.state.step,
            self.state.epoch,
            fmt_time(self.state.train_seconds),
        )


def truncate(path: Path, size: int) -> None:
    """Cut a file to ``size`` bytes (no-op if missing or shorter)."""
    if path.is_file() and path.stat().st_size > size:
        with open(path, "r+b") as f:
            f.truncate(size)
