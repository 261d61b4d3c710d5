"""What a person watching training sees: log lines with ETA, a progress bar, metrics.jsonl, clean stops."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from nmt import NmtError
from nmt.config import TrainConfig
from nmt.runtime import peak_memory_mib

if TYPE_CHECKING:
    from nmt.training.tensorboard import Board

log = logging.getLogger(__name__)


def fmt_time(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@dataclass
class Meter:
    """Running sums between two log lines (this process's batches)."""

    loss: torch.Tensor | float = 0.0  # summed on the device: no host sync per batch
    nll: torch.Tensor | float = 0.0
    tokens: int = 0
    norms: list[float] = field(default_factory=list)
    clipped: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, loss: torch.Tensor, nll: torch.Tensor, tokens: int) -> None:
        self.loss = self.loss + loss
        self.nll = self.nll + nll
        self.tokens += tokens

    def state(self) -> dict:
        """The sums so far (checkpointed, so a resumed run logs the same figures)."""
        return {
            "loss": float(self.loss),
            "nll": float(self.nll),
            "tokens": self.tokens,
            "norms": list(self.norms),
            "clipped": self.clipped,
        }

    @classmethod
    def from_state(cls, state: dict) -> Meter:
        return cls(state["loss"], state["nll"], state["tokens"], list(state["norms"]), state["clipped"])


class StopSignal:
    """First SIGINT/SIGTERM: finish the current update, validate, save, exit. Second: abort."""

    def __init__(self) -> None:
        self.requested = False
        self.old: dict = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        log.warning(
            "%s received: stopping after this update (send again to abort)", signal.Signals(signum).name
        )
        for sig, old in self.old.items():
            signal.signal(sig, old)

    def __exit__(self, *exc) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


class Progress:
    """The progress bar (on a terminal), the periodic log line and ``metrics.jsonl`` (rank 0 only);
    ``board``: TensorBoard, which gets every record metrics.jsonl gets."""

    def __init__(
        self,
        run_dir: Path,
        tc: TrainConfig,
        first_step: int,
        main: bool,
        device: torch.device | None = None,
        board: Board | None = None,
    ) -> None:
        self.tc, self.main, self.board = tc, main, board
        self.device = device or torch.device("cpu")
        self.rates: list[float] = []  # target tokens/s of each log interval; steady state = median
        self.metrics = open(run_dir / "metrics.jsonl", "a") if main else None  # noqa: SIM115 (closed in close())
        self.bar = tqdm(
            total=tc.max_steps or None,
            initial=first_step,
            unit="step",
            dynamic_ncols=True,
            disable=not (main and sys.stderr.isatty()),
            desc="train",
        )

    def record(self, rec: dict) -> None:
        if self.metrics is not None:
            try:
                self.metrics.write(json.dumps(rec) + "\n")
                self.metrics.flush()
            except OSError as e:
                raise NmtError(f"{self.metrics.name}: cannot write: {e.strerror or e}") from None
        if self.board is not None:
            self.board.record(rec)

    def position(self) -> int:
        """Bytes of metrics.jsonl written so far (a checkpoint records it: what follows is dropped on resume)."""
        return self.metrics.tell() if self.metrics is not None else 0

    def eta(
        self, step: int, epoch: int, seconds: float, step_seconds: float, updates: int, u: int
    ) -> float | None:
        """Seconds left under the first limit to be reached (None without limits)."""
        tc, left = self.tc, []
        if tc.max_steps:
            left.append((tc.max_steps - step) * step_seconds)
        if tc.max_time:
            left.append(60 * tc.max_time - seconds)
        if tc.max_epochs:
            left.append(((tc.max_epochs - epoch) * updates + updates - u - 1) * step_seconds)
        return max(0.0, min(left)) if left else None

    def log_interval(
        self,
        meter: Meter,
        totals: list[float],
        step: int,
        epoch: int,
        seconds: float,
        lr: float,
        updates: int,
        u: int,
    ) -> None:
        """One log line for the updates since the last one; ``totals`` = [loss, nll, tokens] of all processes."""
        elapsed = time.perf_counter() - meter.start
        steps = max(len(meter.norms), 1)
        loss_sum, nll_sum, tokens = totals
        tok_s = tokens / max(elapsed, 1e-9)
        self.rates.append(tok_s)
        loss, nll = loss_sum / max(tokens, 1), nll_sum / max(tokens, 1)
        eta = self.eta(step, epoch, seconds, elapsed / steps, updates, u)
        if eta is not None and not self.tc.max_steps:
            self.bar.total = step + int(eta / max(elapsed / steps, 1e-9))
        self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", refresh=False)
        if not self.main:
            return
        norm = float(np.mean(meter.norms)) if meter.norms else 0.0
        mem = peak_memory_mib(self.device)  # resident set on a CPU, allocated tensors on a GPU
        log.info(
            "step %d | epoch %d %d%% | loss %.3f | ppl %.1f | lr %.2e | |g| %.2f (clipped %d%%) | %s tgt tok/s | "
            "%.0f ms/step | %s | ETA %s | peak mem %s MiB",
            step,
            epoch,
            100 * (u + 1) // updates,
            loss,
            math.exp(min(nll, 50)),
            lr,
            norm,
            100 * meter.clipped // steps,
            f"{tok_s:,.0f}",
            1000 * elapsed / steps,
            fmt_time(seconds),
            "--" if eta is None else fmt_time(eta),
            f"{mem:,.0f}",
        )
        self.record(
            {
                "kind": "train",
                "step": step,
                "epoch": epoch,
                "loss": loss,
                "ppl": math.exp(min(nll, 50)),
                "lr": lr,
                "grad_norm": norm,
                "tok_s": tok_s,
                "peak_mem_mib": round(mem, 1),
                "time": seconds,
            }
        )

    def steady_rate(self) -> float | None:
        return round(float(np.median(self.rates)), 1) if self.rates else None

    def close(self) -> None:
        self.bar.close()
        if self.metrics is not None:
            self.metrics.close()
