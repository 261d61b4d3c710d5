"""A training run's checkpoints folder: step checkpoints, ``best.pt``, ``last.pt``, ``index.json``.

The file format itself is ``nmt.model.io`` (shared with everything that only reads checkpoints).
This module adds what a training run needs on top of it:

- ``CheckpointKeeper`` keeps the ``keep_last`` newest and the ``keep_best`` best step checkpoints
  (for averaging), with ``best.pt`` a hard link to the best one and ``index.json`` listing them.
- Saving a validation is crash-safe at any moment. The step checkpoint is written first (atomically),
  then ``last.pt``, whose atomic rename is the commit point: it records the index and the best step
  that this save leads to. Only then are ``best.pt``, ``index.json`` and pruning brought in line
  with that record. A run killed anywhere in between is repaired by ``restore()`` on resume, which
  applies the record of ``last.pt`` again and removes what a lost future left behind.
- ``average_checkpoints`` averages the weights of several checkpoints (``nmt-average``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from nmt import NmtError
from nmt.model.io import load_checkpoint, save_checkpoint


class CheckpointKeeper:
    """Step checkpoints under ``ckpt_dir`` with an index of (step, file, metric)."""

    def __init__(self, ckpt_dir: Path, keep_last: int, keep_best: int) -> None:
        self.dir, self.keep_last, self.keep_best = Path(ckpt_dir), keep_last, keep_best
        self.index_path = self.dir / "index.json"
        self.entries: list[dict] = []  # the committed index (what last.pt recorded)
        self.best: str | None = None  # file name of the best step checkpoint

    # ------------------------------------------------------------------ reading (nmt-average)

    def index(self) -> list[dict]:
        """The index on disk (a finished or running run)."""
        if not self.index_path.is_file():
            return []
        try:
            return json.loads(self.index_path.read_text())
        except ValueError:
            raise NmtError(f"{self.index_path}: damaged (not JSON); resume the run to rebuild it") from None

    def select(self, k: int, by: str) -> list[Path]:
        """The k newest (``by="last"``) or best (``by="best"``) step checkpoints still on disk."""
        entries = self.index()
        key = (lambda e: -e["step"]) if by == "last" else (lambda e: -e["metric"])
        return [
            self.dir / e["file"] for e in sorted(entries, key=key)[:k] if (self.dir / e["file"]).is_file()
        ]

    # ------------------------------------------------------------------ writing (training)

    def save_step(self, step: int, payload: dict[str, Any], metric: float, is_best: bool) -> dict:
        """Write the step checkpoint; returns the record (index and best) that ``last.pt`` must
        carry to commit it. Nothing else on disk changes until ``apply()``."""
        name = f"step_{step:07d}.pt"
        save_checkpoint(self.dir / name, payload)
        entries = [e for e in self.entries if e["step"] != step] + [
            {"step": step, "file": name, "metric": metric}
        ]
        newest = {e["step"] for e in sorted(entries, key=lambda e: -e["step"])[: self.keep_last]}
        best = {e["step"] for e in sorted(entries, key=lambda e: -e["metric"])[: self.keep_best]}
        best_file = name if is_best else self.best
        kept = [e for e in entries if e["step"] in newest | best or e["file"] == best_file]
        return {"index": sorted(kept, key=lambda e: e["step"]), "best": best_file}

    def apply(self, record: dict) -> None:
        """Bring best.pt, index.json and the step files in line with a committed record (idempotent)."""
        self.entries, self.best = [dict(e) for e in record["index"]], record["best"]
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            best, link = self.dir / str(self.best), self.dir / "best.pt"
            if (
                self.best is not None
                and best.is_file()
                and not (link.is_file() and os.path.samefile(best, link))
            ):
                tmp = self.dir / ".best.pt.tmp"
                tmp.unlink(missing_ok=True)
                try:
                    os.link(best, tmp)  # best.pt shares the step file's data
                except OSError:  # a file system without hard links
                    shutil.copyfile(best, tmp)
                os.replace(tmp, link)  # the switch is atomic
            tmp = self.index_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries, indent=1))
            os.replace(tmp, self.index_path)
        except OSError as e:
            raise NmtError(f"{e.filename or self.dir}: cannot write: {e.strerror or e}") from None
        keep = {e["file"] for e in self.entries}
        for p in self.dir.glob("step_*.pt"):
            if p.name not in keep:  # pruned, or written by a run that died before committing it
                p.unlink(missing_ok=True)

    def clean_temporary(self) -> list[str]:
        """Remove temporary files left by a process killed while writing (call with the run lock held)."""
        if not self.dir.is_dir():
            return []
        stale = {
            p
            for p in self.dir.iterdir()
            if ".tmp" in p.name and (p.name.startswith(".") or p.suffix == ".tmp")
        }
        for p in stale:
            p.unlink(missing_ok=True)
        return sorted(p.name for p in stale)


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """Average the weights of several checkpoints of one run (Junczys-Dowmunt et al. 2016);
    returns the newest checkpoint's dict with the averaged weights."""
    if not paths:
        raise NmtError("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    newest = max(ckpts, key=lambda c: c.get("step", 0))
    for p, c in zip(paths, ckpts):
        if c.get("spm") != newest.get("spm") or c["model"].keys() != newest["model"].keys():
            raise NmtError(
                f"{p}: not from the same run as {paths[ckpts.index(newest)]} (other vocabularies or layers)"
            )
    avg = {}
    for name, value in newest["model"].items():
        if value.is_floating_point():
            if any(c["model"][name].shape != value.shape for c in ckpts):
                raise NmtError(f"cannot average: {name} has different shapes in the checkpoints")
            avg[name] = sum(c["model"][name].double() for c in ckpts).div(len(ckpts)).to(value.dtype)
        else:
            avg[name] = value
    return {
        **{k: v for k, v in newest.items() if k not in ("format", "version", "nmt_version", "optimizer")},
        "model": avg,
        "averaged_from": [str(p) for p in paths],
    }
