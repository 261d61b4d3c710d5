"""Self-contained checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds everything needed to translate (weights, resolved config, both SentencePiece
models) and, for ``last.pt``, everything needed to resume (optimizer, schedule, step, data order
and RNG states). Writing goes to a temporary file in the same folder, fsync'd, then renamed over
the target, so a kill during a save leaves the previous file intact. Loading never unpickles
code (``weights_only=True``), so a checkpoint from elsewhere cannot run anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

import nmt
from nmt import NmtError
from nmt.config import ModelConfig
from nmt.data.tokenizer import Tokenizer
from nmt.model.seq2seq import Seq2Seq

FORMAT = "nmt-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format tags) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "nmt_version": nmt.__version__, **payload}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; anything that is not an nmt checkpoint of this format is an NmtError."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holding objects we refuse to unpickle
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NmtError(f"{path}: not a readable nmt checkpoint ({reason[:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise NmtError(f"{path}: not an nmt checkpoint")
    if ckpt.get("version") != VERSION:
        raise NmtError(
            f"{path}: checkpoint format version {ckpt.get('version')} (nmt {ckpt.get('nmt_version')}); "
            f"this nmt ({nmt.__version__}) reads version {VERSION}"
        )
    return ckpt


def model_config(ckpt: dict[str, Any], path: Path | str = "checkpoint") -> ModelConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), ckpt["config"]["model"])
        return OmegaConf.to_object(merged)
    except Exception as e:
        first = str(e).splitlines()[0]
        raise NmtError(f"{path}: its model config does not fit this nmt version ({first})") from None


def load_model(
    path: Path | str, device: torch.device
) -> tuple[Seq2Seq, Tokenizer, Tokenizer, dict[str, Any]]:
    """A checkpoint to a ready model in eval mode, its two tokenizers, and the checkpoint dict."""
    ckpt = load_checkpoint(path)
    try:
        src_tok, tgt_tok = Tokenizer(ckpt["spm"]["src"]), Tokenizer(ckpt["spm"]["tgt"])
        model = Seq2Seq(model_config(ckpt, path), len(src_tok), len(tgt_tok))
        model.load_state_dict(ckpt["model"])
    except NmtError:
        raise
    except Exception as e:
        raise NmtError(
            f"{path}: damaged or incompatible checkpoint ({str(e).splitlines()[0][:200]})"
        ) from None
    return model.to(device).eval(), src_tok, tgt_tok, ckpt


class CheckpointKeeper:
    """Step checkpoints under ``ckpt_dir`` with an index (step, metric): keeps the ``keep_last``
    newest and the ``keep_best`` best (for averaging), links the best one as ``best.pt``."""

    def __init__(self, ckpt_dir: Path, keep_last: int, keep_best: int) -> None:
        self.dir, self.keep_last, self.keep_best = Path(ckpt_dir), keep_last, keep_best
        self.index_path = self.dir / "index.json"

    def index(self) -> list[dict]:
        return json.loads(self.index_path.read_text()) if self.index_path.is_file() else []

    def _write_index(self, entries: list[dict]) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        os.replace(tmp, self.index_path)

    def save(self, step: int, payload: dict[str, Any], metric: float, is_best: bool) -> Path:
        path = self.dir / f"step_{step:07d}.pt"
        save_checkpoint(path, payload)
        if is_best:  # before pruning, which may remove this very step file
            tmp = self.dir / ".best.pt.tmp"
            tmp.unlink(missing_ok=True)
            os.link(path, tmp)  # best.pt shares the file's data; the rename makes the switch atomic
            os.replace(tmp, self.dir / "best.pt")
        entries = [e for e in self.index() if e["step"] != step] + [
            {"step": step, "file": path.name, "metric": metric}
        ]
        newest = {e["step"] for e in sorted(entries, key=lambda e: -e["step"])[: self.keep_last]}
        best = {e["step"] for e in sorted(entries, key=lambda e: -e["metric"])[: self.keep_best]}
        kept = [e for e in entries if e["step"] in newest | best]
        for e in entries:
            if e not in kept:
                (self.dir / e["file"]).unlink(missing_ok=True)
        self._write_index(sorted(kept, key=lambda e: e["step"]))
        return path

    def select(self, k: int, by: str) -> list[Path]:
        """The k newest (``by="last"``) or best (``by="best"``) step checkpoints still on disk."""
        entries = self.index()
        key = (lambda e: -e["step"]) if by == "last" else (lambda e: -e["metric"])
        return [
            self.dir / e["file"] for e in sorted(entries, key=key)[:k] if (self.dir / e["file"]).is_file()
        ]


def average_checkpoints(paths: list[Path]) -> dict[str, Any]:
    """Average the weights of several checkpoints of one run (Junczys-Dowmunt et al. 2016);
    returns the newest checkpoint's dict with the averaged weights."""
    if not paths:
        raise NmtError("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    newest = max(ckpts, key=lambda c: c.get("step", 0))
    avg = {}
    for name, value in newest["model"].items():
        if value.is_floating_point():
            avg[name] = sum(c["model"][name].double() for c in ckpts).div(len(ckpts)).to(value.dtype)
        else:
            avg[name] = value
    return {
        **{k: v for k, v in newest.items() if k not in ("format", "version", "nmt_version")},
        "model": avg,
        "averaged_from": [str(p) for p in paths],
    }
