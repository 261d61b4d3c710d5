"""Run nmt-train with a fault injected, for the reliability tests (never used by nmt itself).

    python tests/killpoint.py POINT N [--dump-weights] -- nmt-train arguments...

POINT says where the process kills itself with SIGKILL (no cleanup of any kind runs), on the
N-th time it gets there:
  step        inside an update, after the backward pass, before the optimizer step
  sigint      the same place, but a SIGINT (Ctrl-C) instead: the update finishes, then training
              validates, saves and stops
  validation  inside a validation, while it decodes the dev set
  slow        not a kill: every validation sleeps N seconds (rank 0 validating alone for long)
  write       in the middle of writing a checkpoint file (half its bytes are on disk)
  commit      after last.pt is written, before best.pt and index.json follow it
  none        never
--dump-weights: at the end, every process writes its own weights to <run_dir>/rank<R>.pt (to
compare the processes of a distributed run).
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def countdown(n: int):  # noqa: ANN201
    left = [n]

    def hit() -> bool:
        left[0] -= 1
        return left[0] == 0

    return hit


def install(point: str, n: int) -> None:
    import torch

    import nmt.training.trainer as trainer
    import nmt.training.validation as validation
    from nmt.training.checkpoint import CheckpointKeeper

    hit = countdown(n)
    if point in ("step", "sigint"):
        step = trainer.clipped_step

        def die_in_update(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if hit():
                if point == "sigint":
                    os.kill(os.getpid(), signal.SIGINT)
                else:
                    die()
            return step(*args, **kwargs)

        trainer.clipped_step = die_in_update
    elif point == "validation":
        decode = validation.decode_ids

        def decode_then_die(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            if hit():
                die()
            return decode(*args, **kwargs)

        validation.decode_ids = decode_then_die
    elif point == "slow":
        decode = validation.decode_ids

        def slow_decode(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            time.sleep(n)
            return decode(*args, **kwargs)

        validation.decode_ids = slow_decode
    elif point == "write":
        save = torch.save

        def half_then_die(obj, f, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if not hit():
                return save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            die()

        torch.save = half_then_die
    elif point == "commit":
        apply = CheckpointKeeper.apply

        def die_before_apply(self, record):  # noqa: ANN001, ANN202
            if (self.dir / "last.pt").is_file() and hit():
                die()
            return apply(self, record)

        CheckpointKeeper.apply = die_before_apply
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")


def dump_weights() -> None:
    import torch

    from nmt.training.trainer import Trainer

    summarize = Trainer.summarize

    def summarize_and_dump(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        torch.save(self.model.state_dict(), Path(self.run_dir) / f"rank{self.dist.rank}.pt")
        return summarize(self, *args, **kwargs)

    Trainer.summarize = summarize_and_dump


def main() -> None:
    args = sys.argv[1:]
    sep = args.index("--")
    own, rest = args[:sep], args[sep + 1 :]
    install(own[0], int(own[1]))
    if "--dump-weights" in own:
        dump_weights()
    sys.argv = ["nmt-train", *rest]
    from nmt.cli.train import main as train_main

    train_main()


if __name__ == "__main__":
    main()
