"""Corpus files on disk: where they are (data roots, split paths) and reading them as text.

Reading validates and stops at the first problem with a message naming the file and line
(missing file, invalid UTF-8, unequal line counts of a parallel pair). A file too large to hold
is read in pieces: ``line_chunks`` finds where every ``lines_per_chunk``-th line starts (a scan
of the bytes, nothing decoded or kept), and ``read_chunk`` reads one piece as text, so that
worker processes can each read their own part of a parallel corpus.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def spread_indices(total: int, n: int) -> list[int]:
    """``n`` line indices spread evenly over ``total`` lines, first and last included (all of
    them when ``n`` is 0 or at least ``total``): a sample that visits every document of a set
    whose documents follow one another, where the first ``n`` lines would see only a few."""
    if n <= 0 or n >= total:
        return list(range(total))
    return sorted({int(round(k * (total - 1) / max(n - 1, 1))) for k in range(n)})


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


@dataclass(frozen=True)
class Chunk:
    """Lines ``first`` .. ``first + count - 1`` (0-based) of a parallel pair of files, as byte
    ranges of each file."""

    src: str
    tgt: str
    first: int
    count: int
    src_range: tuple[int, int]
    tgt_range: tuple[int, int]


def line_starts(path: Path, every: int, block: int = 1 << 24) -> tuple[list[int], int]:
    """The byte offset where lines 0, every, 2*every, ... start, and the number of lines (an
    unterminated last line counts, as in ``read_lines``): one pass over the bytes in blocks."""
    if not path.is_file():
        raise NmtError(f"{path}: file not found")
    starts, lines, pos = [0], 0, 0
    last = b"\n"
    with open(path, "rb") as f:
        if f.read(4) == b"\xef\xbb\xbf":  # a byte order mark alone is no line
            return starts, 0
        f.seek(0)
        while data := f.read(block):
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)  # positions of "\n"
            # line l ends at ends[k] with l = lines + k; line l + 1 starts one byte later
            want = np.arange(((lines // every) + 1) * every - 1, lines + len(ends), every) - lines
            starts.extend(int(pos + ends[k] + 1) for k in want)
            lines += len(ends)
            pos += len(data)
            last = data[-1:]
    if pos > 0 and last != b"\n":
        lines += 1  # the last line has no newline
    while starts and starts[-1] >= pos and len(starts) > 1:
        starts.pop()  # a chunk would start at the end of the file
    return starts, lines


def parallel_chunks(src: Path, tgt: Path, lines_per_chunk: int, limit: int = 0) -> tuple[list[Chunk], int]:
    """A parallel pair of files cut into chunks of ``lines_per_chunk`` lines (the first ``limit``
    lines only, if > 0), and the number of lines used; unequal line counts are an NmtError
    naming both files."""
    s_starts, s_lines = line_starts(src, lines_per_chunk)
    t_starts, t_lines = line_starts(tgt, lines_per_chunk)
    if s_lines != t_lines:
        raise NmtError(f"line counts differ: {src} has {s_lines} lines, {tgt} has {t_lines} lines")
    n = min(s_lines, limit) if limit > 0 else s_lines
    s_size, t_size = src.stat().st_size, tgt.stat().st_size
    chunks = []
    for k, first in enumerate(range(0, n, lines_per_chunk)):
        count = min(lines_per_chunk, n - first)
        s_end = s_starts[k + 1] if k + 1 < len(s_starts) else s_size
        t_end = t_starts[k + 1] if k + 1 < len(t_starts) else t_size
        chunks.append(Chunk(str(src), str(tgt), first, count, (s_starts[k], s_end), (t_starts[k], t_end)))
    return chunks, n


def read_chunk(path: str, byte_range: tuple[int, int], first: int, count: int) -> list[str]:
    """The ``count`` lines of a chunk as text (the treatment of ``read_lines``: a byte order mark
    at the start of the file and a trailing "\r" removed); invalid UTF-8 is an NmtError naming
    the file, line and column."""
    start, end = byte_range
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    if start == 0 and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw = data.split(b"\n")[:count]
    try:
        lines = data.decode("utf-8").split("\n")[:count]
    except UnicodeDecodeError:
        lines = [decode_utf8_line(line, path, first + k + 1) for k, line in enumerate(raw)]
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
