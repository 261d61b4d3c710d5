"""What every CLI shares: Hydra composition around a plain function, and one-line errors.

``hydra_cli("train", task)`` makes a ``main()`` that composes ``conf/train.yaml`` with the command
line, turns the config into the job dataclass (``OmegaConf.to_object``) and calls ``task`` with
it. An ``NmtError`` (bad file, bad value, bad checkpoint) becomes ``nmt-<verb>: error: <message>``
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nmt import NmtError
from nmt.config import conf_dir, register_configs
from nmt.startup import KERNEL_CACHE_DECODE, bound_kernel_caches, tune_allocator

if TYPE_CHECKING:
    from omegaconf import DictConfig


def fail(prog: str, message: str, status: int = 2) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


@contextlib.contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """What the body raises for a reason a user can act on (an ``NmtError``: bad file, bad value,
    bad checkpoint, no CUDA; a file it could not read or write; Ctrl-C) becomes ``<prog>: error:
    <message>`` on stderr and a non-zero exit, never a traceback; a closed output pipe
    (``... | head``) ends it quietly. Every nmt-* tool runs its task inside it, and so do the
    scripts in bench/."""
    try:
        yield
    except NmtError as e:
        logging.getLogger("nmt").debug("error", exc_info=True)
        fail(prog, str(e))
    except KeyboardInterrupt:
        fail(prog, "interrupted", 130)
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(0) from None
    except OSError as e:
        logging.getLogger("nmt").debug("error", exc_info=True)
        fail(prog, f"{e.filename}: {e.strerror}" if e.filename else str(e))


def to_job(cfg: DictConfig) -> Any:
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", "") or str(e)
        raise NmtError(f"{key} is required (add {key}=... to the command line)") from None
    except OmegaConfBaseException as e:
        raise NmtError(str(e).splitlines()[0]) from None


def run_dir() -> Path:
    """The job's output directory: ``run_dir`` for one run, a subfolder per job with ``-m``."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def hydra_cli(
    config_name: str,
    task: Callable[[Any], None],
    direct: bool = False,
    kernel_cache: int = KERNEL_CACHE_DECODE,
    quick_exit: bool = False,
) -> Callable[[], None]:
    """``main()`` of the tool ``nmt-<config_name>``.

    ``direct``: for tools that write no run folder (translate, evaluate, ...): a command line of
    plain ``key=value`` overrides is composed once, without Hydra where it is simple enough
    (``nmt/cli/compose.py``), else with Hydra's compose API, and the task runs at once; Hydra's
    application (``-m`` sweeps, ``--cfg``, ``--help``, ...) still handles every command line with
    an option. Hydra's application composes the config twice (once to learn the run mode) and
    sets up a job: on a one-line translation that was most of the start-up after ``import torch``.
    ``kernel_cache``: how many oneDNN kernels to keep (``nmt.startup.bound_kernel_caches``).
    ``quick_exit``: a one-shot tool whose task has finished (its output written and closed) ends
    the process at once instead of letting the interpreter tear down torch and oneDNN piece by
    piece, which took about 0.4 s of a 2.5 s file translation (docs/benchmarks.md, 2026-12-01).
    """
    prog = f"nmt-{config_name}"

    def _task(cfg: Any) -> None:  # a composed DictConfig, or the job itself (compose_simple)
        with one_line_errors(prog):
            task(cfg if dataclasses.is_dataclass(cfg) else to_job(cfg))

    def main() -> None:
        tune_allocator()
        bound_kernel_caches(kernel_cache)
        argv = sys.argv[1:]
        if direct and not any(a.startswith("-") for a in argv):
            _run_direct(prog, config_name, argv, _task)
            if quick_exit:
                _exit_now()
            return
        import hydra
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        register_configs()
        app = hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(_task)
        if os.environ.get("HYDRA_FULL_ERROR"):  # the user asked for Hydra's full report
            app()
            return
        # Hydra reports a bad command line (unknown key, wrong type, bad override) in several lines
        # and exits with 1; let the error reach us instead and say it in one line, exit status 2.
        os.environ["HYDRA_FULL_ERROR"] = "1"
        try:
            app()
        except (HydraException, OmegaConfBaseException) as e:
            fail(prog, config_error(e))
        except Exception as e:  # Hydra setting up the run folder or its log file (read-only, full disk)
            os_error = os_cause(e)
            if os_error is None:
                raise
            fail(
                prog,
                f"{os_error.filename}: cannot write: {os_error.strerror}"
                if os_error.filename
                else str(os_error),
            )

    return main


def _exit_now() -> NoReturn:
    """Exit with status 0 after flushing what Python still buffers (log handlers, stdout, stderr),
    skipping the interpreter's teardown; for a finished one-shot command only."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`... | head`) is not an error
            stream.flush()
    os._exit(0)


def _run_direct(prog: str, config_name: str, overrides: list[str], task: Callable[[Any], None]) -> None:
    """Compose once, log like conf/hydra/job_logging/nmt_console.yaml, run the task."""
    from nmt.cli.compose import compose_simple

    cfg = compose_simple(config_name, overrides)
    if cfg is None:  # not simple, or not valid: Hydra composes it (and words any error)
        from hydra import compose, initialize_config_dir
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        register_configs(f"{config_name}_schema")
        try:
            with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name=config_name):
                cfg = compose(config_name=config_name, overrides=overrides)
        except (HydraException, OmegaConfBaseException) as e:
            fail(prog, config_error(e))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    task(cfg)


def os_cause(e: BaseException | None) -> OSError | None:
    """The OSError an exception is, or was raised from (Hydra wraps the log file's in a ValueError)."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def config_error(e: BaseException) -> str:
    """Hydra's and OmegaConf's messages about a bad command line, in one line."""
    parts: list[str] = []
    while e is not None:
        listing = False  # inside "Available options in 'model':" followed by one option a line
        for line in str(e).splitlines():
            line = line.strip()
            if not line or line.startswith(("full_key:", "object_type=", "reference_type=", "To append")):
                continue
            if line.startswith("Config search path"):
                break
            if listing:
                parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
            elif line not in parts:
                parts.append(line.rstrip("."))
            listing = listing or line.endswith(":")
        e = e.__cause__  # type: ignore[assignment]
    return "; ".join(parts) or "bad configuration"
