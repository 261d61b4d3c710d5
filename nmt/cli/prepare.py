"""nmt-prepare: validate the corpus, train SentencePiece, encode all splits into <run_dir>/data."""

from __future__ import annotations

import logging

from nmt.checks import validate_data, validate_tokenizer
from nmt.cli.common import hydra_cli, run_dir
from nmt.config import TrainJob
from nmt.data.corpus import prepare
from nmt.runlock import RunLock

log = logging.getLogger(__name__)


def task(cfg: TrainJob) -> None:
    validate_data(cfg.data)
    validate_tokenizer(cfg.tokenizer)
    out = run_dir() / "data"
    with RunLock(run_dir(), "nmt-prepare"):
        p = prepare(cfg.data, cfg.tokenizer, out)
    c = p.manifest["counts"]
    log.info(
        "prepared %s in %s: train %d, dev %d, test %d pairs; vocabularies %d (%s) / %d (%s)",
        cfg.data.name,
        out,
        c["train"]["kept"],
        c["dev"]["kept"],
        c["test"]["kept"],
        len(p.src_tok),
        cfg.data.src_lang,
        len(p.tgt_tok),
        cfg.data.tgt_lang,
    )


main = hydra_cli("prepare", task)

if __name__ == "__main__":
    main()
