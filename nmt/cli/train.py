"""nmt-train: train a model (preparing the data first if needed); also under torchrun for several GPUs."""

from __future__ import annotations

from tqdm.contrib.logging import logging_redirect_tqdm

from nmt.cli.common import hydra_cli, run_dir
from nmt.config import TrainJob
from nmt.startup import KERNEL_CACHE_TRAIN
from nmt.training.trainer import train


def task(cfg: TrainJob) -> None:
    with logging_redirect_tqdm():
        train(cfg, run_dir())


main = hydra_cli("train", task, kernel_cache=KERNEL_CACHE_TRAIN)

if __name__ == "__main__":
    main()
