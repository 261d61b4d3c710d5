"""The checkpoint file format, defined once: a dict in a PyTorch zip file, written atomically,
read with ``weights_only=True``, turned into a ready model and its tokenizers.

Training writes checkpoints (``nmt.training.checkpoint`` adds what resuming needs); everything
that only reads them (the translator, the API, a server) imports this module and never the
training package. A checkpoint holds everything needed to translate: the weights, the resolved
config, both SentencePiece models.

Writing goes to a temporary file in the same folder, fsync'd, then renamed over the target, so a
kill or a full disk during a save leaves the previous file intact. Reading never unpickles code:
a file holding anything but tensors and plain data is refused, whoever made it.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

import nmt
from nmt import NmtError
from nmt.config import ModelConfig
from nmt.data.tokenizer import Tokenizer
from nmt.model.seq2seq import Seq2Seq
from nmt.structured import build

FORMAT = "nmt-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format tags) to ``path`` atomically; an OS error (full disk,
    read-only folder, file size limit) is an NmtError naming the file, the old file untouched."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, "nmt_version": nmt.__version__, **payload}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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
    except (OSError, RuntimeError) as e:  # torch's zip writer turns a failed write into a RuntimeError
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        why = (cause.strerror or str(cause)) if isinstance(cause, OSError) else str(e).strip().splitlines()[0]
        kept = " (the previous file is intact)" if path.is_file() else ""
        raise NmtError(f"{path}: cannot write the checkpoint: {why}{kept}") from None


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; anything that is not an nmt checkpoint of a format this
    version reads is an NmtError with one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"{path}: checkpoint not found")
    try:
        if not zipfile.is_zipfile(path):
            raise NmtError(
                f"{path}: not an nmt checkpoint (not a complete PyTorch file: truncated or of another kind)"
            )
        with warnings.catch_warnings():  # PyTorch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            # Read whole into memory, never memory-mapped: a model mapped from its file would take
            # new weights when the file is overwritten in place (cp, rsync --inplace) and die of
            # SIGBUS when it is truncated. load_model assigns these tensors: one copy in memory.
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except NmtError:
        raise
    except OSError as e:
        raise NmtError(f"{path}: cannot read the checkpoint: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - the unpickler raises many kinds
        if isinstance(e, pickle.UnpicklingError) or "weights only" in str(e).lower():
            why = "it holds Python objects other than tensors and plain data, which nmt never loads"
        else:
            why = f"damaged: {type(e).__name__}"
        raise NmtError(f"{path}: not an nmt checkpoint ({why})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise NmtError(f"{path}: not an nmt checkpoint (a PyTorch file without nmt's format tag)")
    version = ckpt.get("version")
    if not isinstance(version, int) or version != VERSION:
        newer = isinstance(version, int) and version > VERSION
        raise NmtError(
            f"{path}: checkpoint format version {version} (written by nmt {ckpt.get('nmt_version')}); "
            f"this nmt ({nmt.__version__}) reads version {VERSION}"
            + ("; upgrade nmt to read it" if newer else "")
        )
    return ckpt


def model_config(ckpt: dict[str, Any], path: Path | str = "checkpoint") -> ModelConfig:
    try:
        return build(ModelConfig, ckpt["config"]["model"])  # nmt.structured: no OmegaConf at start-up
    except Exception as e:  # noqa: BLE001
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NmtError(f"{path}: its model config does not fit this nmt version ({first})") from None


def tokenizers(ckpt: dict[str, Any], path: Path | str = "checkpoint") -> tuple[Tokenizer, Tokenizer]:
    """The source and target SentencePiece models stored in a checkpoint."""
    try:
        return Tokenizer(ckpt["spm"]["src"]), Tokenizer(ckpt["spm"]["tgt"])
    except Exception as e:  # noqa: BLE001
        raise NmtError(
            f"{path}: damaged checkpoint (its SentencePiece models: {str(e).splitlines()[0][:120]})"
        ) from None


def load_model(
    path: Path | str, device: torch.device
) -> tuple[Seq2Seq, Tokenizer, Tokenizer, dict[str, Any]]:
    """A checkpoint to a ready model in eval mode, its two tokenizers, and the checkpoint dict."""
    ckpt = load_checkpoint(path)
    src_tok, tgt_tok = tokenizers(ckpt, path)
    cfg = model_config(ckpt, path)
    model = Seq2Seq(cfg, len(src_tok), len(tgt_tok), initialize=False)
    try:
        model.load_state_dict(ckpt["model"], assign=True)  # the loaded tensors themselves, no copy
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NmtError(
            f"{path}: its weights do not fit its config and vocabularies (damaged or assembled from "
            f"different models): {first}"
        ) from None
    return model.to(device).eval(), src_tok, tgt_tok, ckpt
