"""Corpus files on disk: where they are (data roots, split paths) and reading them as text.

Reading validates and stops at the first problem with a message naming the file and line
(missing file, invalid UTF-8, unequal line counts of a parallel pair).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nmt import NmtError
from nmt.config import DataConfig, repo_root


def data_roots(root: str) -> list[Path]:
    """Folders that may hold the corpora: ``root`` as given, or for "auto" $NMT_DATA_ROOT,
    <repo>/data/corpora (where data/download.sh puts them) and <repo>/../shared/data, in that order."""
    if root != "auto":
        return [Path(root).expanduser()]
    env = os.environ.get("NMT_DATA_ROOT", "")
    return ([Path(env).expanduser()] if env else []) + [
        repo_root() / "data" / "corpora",
        repo_root().parent / "shared" / "data",
    ]


def resolve_data_root(root: str) -> Path:
    """The first existing folder of ``data_roots(root)``."""
    candidates = data_roots(root)
    for c in candidates:
        if c.is_dir():
            return c
    raise NmtError(
        "no corpus folder found: set data.root=/path/to/corpora or NMT_DATA_ROOT, or download "
        "the corpora with data/download.sh (looked in: " + ", ".join(map(str, candidates)) + ")"
    )


def data_path(cfg: DataConfig, rel: str) -> Path:
    """A corpus path relative to the data root; with root "auto", the first root that holds it,
    so a corpus downloaded into data/corpora and one in ../shared/data can be used side by side."""
    p = Path(rel).expanduser()
    if p.is_absolute():
        return p
    for root in data_roots(cfg.root):
        if (root / p).exists():
            return root / p
    return resolve_data_root(cfg.root) / p


def split_paths(cfg: DataConfig, split: str) -> tuple[Path, Path]:
    base = data_path(cfg, cfg.corpus)
    prefix = getattr(cfg, split)
    return base / f"{prefix}.{cfg.src_lang}", base / f"{prefix}.{cfg.tgt_lang}"


def decode_utf8_line(raw: bytes, path: Path | str, lineno: int) -> str:
    """One line's bytes to text; invalid UTF-8 is an NmtError naming the file, line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NmtError(
            f"{path}:{lineno}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
        ) from None


def read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 text file, split on "\\n" only (a trailing "\\r" and a leading byte
    order mark are removed).

    Unicode line separators inside a line (U+2028, U+0085, ...) do not split it, so the line
    numbers agree with ``wc -l`` and with the other side of the corpus.
    """
    if not path.is_file():
        raise NmtError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise NmtError(
            f"{path}:{lineno}: invalid UTF-8 (byte 0x{data[e.start]:02x} at column {col})"
        ) from None
    if text.startswith("\ufeff"):  # a byte order mark is not part of the first line
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_parallel(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise NmtError(
            f"line counts differ: {src_path} has {len(src)} lines, {tgt_path} has {len(tgt)} lines"
        )
    return src, tgt


def file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
