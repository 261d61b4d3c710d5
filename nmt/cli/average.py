"""nmt-average: one checkpoint from the weight average of a run's last or best k checkpoints.

Averaging the last few checkpoints of a run smooths the noise of the final updates and usually
gains a little BLEU for free (Junczys-Dowmunt et al. 2016; Vaswani et al. 2017).
"""

from __future__ import annotations

import logging
from pathlib import Path

from nmt import NmtError
from nmt.cli.common import hydra_cli
from nmt.config import AverageJob
from nmt.model.io import save_checkpoint
from nmt.training.checkpoint import CheckpointKeeper, average_checkpoints

log = logging.getLogger(__name__)


def average_run(run_dir: Path, k: int, by: str, output: Path | None = None) -> Path:
    if by not in ("best", "last"):
        raise NmtError(f"by must be best or last, got {by!r}")
    ckpt_dir = Path(run_dir) / "checkpoints"
    paths = CheckpointKeeper(ckpt_dir, 0, 0).select(k, by)
    if not paths:
        raise NmtError(f"{ckpt_dir}: no step checkpoints to average (is {run_dir} a training run?)")
    if len(paths) < k:
        log.warning("only %d step checkpoints on disk (asked for %d)", len(paths), k)
    out = output or ckpt_dir / f"avg_{by}{k}.pt"
    save_checkpoint(out, average_checkpoints(paths))
    log.info("averaged %s -> %s", ", ".join(p.name for p in paths), out)
    return out


def task(cfg: AverageJob) -> None:
    average_run(Path(cfg.run_dir), cfg.k, cfg.by, Path(cfg.output) if cfg.output else None)


main = hydra_cli("average", task, direct=True, quick_exit=True)

if __name__ == "__main__":
    main()
