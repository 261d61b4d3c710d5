"""A checkpoint's configuration read without importing torch.

``nmt-translate`` reads it before torch is imported (most of its start-up) to learn what the
model's text processing needs, and starts importing that in the background (``nmt.data.text.
prefetch_moses``). The reading executes nothing from the file: every class the pickle names is
replaced by an inert stand-in, and tensors are not read at all. Any file this cannot read gives
``None``; the full load (``nmt.model.io.load_checkpoint``) reads it properly and reports problems.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from nmt import NmtError
from nmt.config import DataConfig, Normalize, Pretokenize, TextConfig


class _Inert:
    """Stands for any object the pickle would build from a class (a tensor, an OrderedDict)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _Peeker(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:  # noqa: ARG002 - nothing is ever imported
        return _Inert

    def persistent_load(self, pid: Any) -> None:  # a tensor's storage: not read
        return None


def peek_config(path: Path | str) -> dict[str, Any] | None:
    """The resolved config stored in the checkpoint ``path``, or None where it cannot be read
    this way (not a file, not a zip, no pickle, no config)."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            if name is None:
                return None
            with z.open(name) as f:
                ckpt = _Peeker(f).load()
        config = ckpt.get("config") if isinstance(ckpt, dict) else None
        return config if isinstance(config, dict) else None
    except Exception:  # noqa: BLE001 - the full load reports what is wrong with the file
        return None


def text_processing(ckpt: dict[str, Any], path: Path | str = "checkpoint") -> DataConfig:
    """The part of a checkpoint's data config that reading and writing text needs (languages,
    text processing, segmentation), read directly (a full OmegaConf merge costs start-up time);
    checkpoints of older versions get the defaults for what they lack."""
    try:
        d = ckpt["config"]["data"]

        def text(side: str) -> TextConfig:
            t = d.get(side) or {}
            return TextConfig(
                normalize=Normalize(t.get("normalize", "none")),
                pretokenize=Pretokenize(t.get("pretokenize", "none")),
                lowercase=bool(t.get("lowercase", False)),
            )

        return DataConfig(
            name=str(d.get("name", "")),
            corpus=str(d.get("corpus", "")),
            src_lang=str(d["src_lang"]),
            tgt_lang=str(d["tgt_lang"]),
            segmented=bool(d.get("segmented", False)),
            src_text=text("src_text"),
            tgt_text=text("tgt_text"),
            processed=bool(d.get("processed", False)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise NmtError(
            f"{path}: its data config does not fit this nmt version ({type(e).__name__}: {e})"
        ) from None
