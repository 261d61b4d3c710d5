"""nmt-lm: train a character-level language model (char-rnn) on a text file.

nmt-lm text=kyoto_wiki/train.en max_chars=5000000 train.max_time=10 run_dir=runs/char_rnn
"""

from __future__ import annotations

import logging
from pathlib import Path

from nmt import NmtError
from nmt.checks import validate_lm
from nmt.cli.common import hydra_cli
from nmt.config import DataConfig, LmJob
from nmt.startup import KERNEL_CACHE_TRAIN

log = logging.getLogger(__name__)


def task(cfg: LmJob) -> None:
    validate_lm(cfg)
    from nmt.data.files import data_path
    from nmt.lm import train_lm
    from nmt.runlock import RunLock
    from nmt.runtime import resolve_device

    try:
        path = data_path(DataConfig(name="lm", corpus="lm", root=cfg.data_root), cfg.text)
    except NmtError:  # no corpus folder at all: the path as given
        path = Path(cfg.text)
    if not path.is_file():
        raise NmtError(f"{path}: text file not found")
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            text = f.read(cfg.max_chars) if cfg.max_chars else f.read()
        except UnicodeDecodeError as e:
            raise NmtError(f"{path}: invalid UTF-8 near byte {e.start}") from None
    out = Path(cfg.run_dir)
    with RunLock(out, "nmt-lm"):
        summary = train_lm(text, cfg.model, cfg.train, out, resolve_device(cfg.device))
    log.info("done: %d steps, %.1f min, best validation %.3f bits per character -> %s", summary["steps"],
             summary["minutes"], summary["best_valid_bpc"], out / "lm.pt")  # fmt: skip


main = hydra_cli("lm", task, kernel_cache=KERNEL_CACHE_TRAIN, direct=True)

if __name__ == "__main__":
    main()
