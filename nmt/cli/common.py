"""What every CLI shares: Hydra composition around a plain function, and one-line errors.

``hydra_cli("train", task)`` makes a ``main()`` that composes ``conf/train.yaml`` with the command
line, turns the config into the job dataclass (``OmegaConf.to_object``) and calls ``task`` with
it. An ``NmtError`` (bad file, bad value, bad checkpoint) becomes ``nmt-<verb>: error: <message>``
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from nmt import NmtError
from nmt.config import conf_dir, register_configs
from nmt.runtime import tune_allocator


def fail(prog: str, message: str, status: int = 2) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def to_job(cfg: DictConfig) -> Any:
    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", "") or str(e)
        raise NmtError(f"{key} is required (add {key}=... to the command line)") from None
    except OmegaConfBaseException as e:
        raise NmtError(str(e).splitlines()[0]) from None


def run_dir() -> Path:
    """The job's output directory: ``run_dir`` for one run, a subfolder per job with ``-m``."""
    return Path(HydraConfig.get().runtime.output_dir)


def hydra_cli(config_name: str, task: Callable[[Any], None]) -> Callable[[], None]:
    prog = f"nmt-{config_name}"

    def _task(cfg: DictConfig) -> None:
        try:
            task(to_job(cfg))
        except NmtError as e:
            logging.getLogger("nmt").debug("error", exc_info=True)
            fail(prog, str(e))
        except KeyboardInterrupt:
            fail(prog, "interrupted", 130)
        except BrokenPipeError:  # e.g. `nmt-translate ... | head`
            sys.stderr.close()
            raise SystemExit(0) from None
        except OSError as e:  # a file the task could not read or write: one line, not a traceback
            logging.getLogger("nmt").debug("error", exc_info=True)
            fail(prog, f"{e.filename}: {e.strerror}" if e.filename else str(e))

    def main() -> None:
        tune_allocator()
        register_configs()
        hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(_task)()

    return main
