"""Encoded pairs on disk, memory-mapped: flat token arrays plus an index (fairseq's layout).

A *part* is a folder of plain arrays, written once and committed by renaming its folder into place:

    src.ids, tgt.ids          every sentence's pieces, one after another, in the smallest dtype
                              that holds the vocabulary (uint16 below 65,536 pieces, else int32)
    src.lens, tgt.lens        pieces per sentence (uint16, or uint32 if a sentence has more)
    src.offsets, tgt.offsets  int64, n + 1: sentence i is ids[offsets[i]:offsets[i + 1]]
    lines                     int64: each pair's 0-based line in the corpus files
    hashes                    uint64 (with data.dedup): each pair's hash, to go on deduplicating
    meta.json                 counts, dtypes and the key of the inputs it was made from

They are opened with ``np.memmap``: opening costs no reading, the pages come from the page cache
as they are used, and processes on one machine (DDP ranks) share them. A *store* (one corpus's
split) is a folder of parts with a ``meta.json`` of its own, written last. ``Pairs`` reads one or
several parts (or stores) as one sequence of pairs.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from nmt import NmtError

FORMAT = 1


@dataclass
class EncodedSplit:
    """Pairs as flat arrays (in memory or memory-mapped): sentence i is
    ``src_ids[src_offsets[i]:src_offsets[i + 1]]``; ``lines`` holds each pair's 0-based line
    number in the original files (for references)."""

    src_ids: np.ndarray
    src_offsets: np.ndarray
    tgt_ids: np.ndarray
    tgt_offsets: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def src_lens(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    @property
    def tgt_lens(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def src(self, i: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[i] : self.src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]

    def release(self) -> None:
        """Let go of the file pages read so far (memory-mapped parts; in memory: nothing to do)."""

    @classmethod
    def from_lists(cls, src: list[list[int]], tgt: list[list[int]], lines: list[int]) -> EncodedSplit:
        def flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
            offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
            np.cumsum([len(s) for s in seqs], out=offsets[1:])
            ids = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
            return ids, offsets

        si, so = flat(src)
        ti, to = flat(tgt)
        return cls(si, so, ti, to, np.asarray(lines, dtype=np.int64))


class Part(EncodedSplit):
    """One committed part, memory-mapped; its lengths are stored, not recomputed.

    The maps are advised for random access (``MADV_RANDOM``: no read-ahead), and ``release``
    unmaps the pages read so far (``MADV_DONTNEED``; they stay in the page cache, shared by every
    process that reads the file): training reads a few sentences here and there, and the kernel
    maps 32-64 KiB around each, so without it a process's resident memory grew by ~25 MiB an
    update on 5 million pairs, towards the size of the files."""

    def __init__(self, folder: Path) -> None:
        meta = read_meta(folder)
        n = meta["pairs"]
        src_offsets, tgt_offsets = (
            _map(folder / "src.offsets", np.int64, n + 1),
            _map(folder / "tgt.offsets", np.int64, n + 1),
        )
        ids = np.dtype(meta["ids_dtype"])
        super().__init__(
            _map(folder / "src.ids", ids, int(src_offsets[-1])),
            src_offsets,
            _map(folder / "tgt.ids", ids, int(tgt_offsets[-1])),
            tgt_offsets,
            _map(folder / "lines", np.int64, n),
        )
        self.meta = meta
        self._src_lens = _map(folder / "src.lens", meta["lens_dtype"], n)
        self._tgt_lens = _map(folder / "tgt.lens", meta["lens_dtype"], n)
        maps = (self.src_ids, self.tgt_ids, src_offsets, tgt_offsets, self._src_lens, self._tgt_lens)
        self._read = [a.base.obj for a in maps if a.base is not None]  # released after each update
        self.hashes = _map(folder / "hashes", np.uint64, n) if meta.get("hashes") else None

    @property
    def src_lens(self) -> np.ndarray:
        return self._src_lens

    @property
    def tgt_lens(self) -> np.ndarray:
        return self._tgt_lens

    def release(self) -> None:
        if hasattr(mmap, "MADV_DONTNEED"):
            for mm in self._read:
                mm.madvise(mmap.MADV_DONTNEED)


def _map(path: Path, dtype: np.dtype | str, count: int) -> np.ndarray:
    """A read-only array over a file of exactly ``count`` items, memory-mapped for random access."""
    dtype = np.dtype(dtype)
    size = path.stat().st_size
    if size != count * dtype.itemsize:
        raise NmtError(f"{path}: {size} bytes, expected {count} x {dtype}")
    if count == 0:
        return np.zeros(0, dtype=dtype)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mm.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mm, dtype=dtype, count=count)


class Pairs:
    """Several sequences of pairs (parts, or whole stores) read as one: pair i of the whole is
    pair i - start[k] of member k. The lengths of all members are gathered in memory (2 or 4
    bytes a sentence) when first asked for, for batching; the pieces are read from the members
    as they are asked for."""

    def __init__(self, members: list[EncodedSplit | Pairs]) -> None:
        self.members = members
        sizes = [len(m) for m in members]
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    @cached_property
    def src_lens(self) -> np.ndarray:
        return _concat([m.src_lens for m in self.members])

    @cached_property
    def tgt_lens(self) -> np.ndarray:
        return _concat([m.tgt_lens for m in self.members])

    def release(self) -> None:
        for m in self.members:
            m.release()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, i: int) -> tuple[EncodedSplit | Pairs, int]:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.members[k], i - int(self.starts[k])

    def src(self, i: int) -> np.ndarray:
        m, j = self.locate(i)
        return m.src(j)

    def tgt(self, i: int) -> np.ndarray:
        m, j = self.locate(i)
        return m.tgt(j)

    @property
    def lines(self) -> np.ndarray:
        """Each pair's line in its own corpus's files (not unique across members)."""
        return _concat([m.lines for m in self.members], np.int64)


def _concat(arrays: list[np.ndarray], dtype: np.dtype | type | None = None) -> np.ndarray:
    if len(arrays) == 1 and dtype is None:
        return np.asarray(arrays[0])
    dtype = dtype or np.result_type(*[a.dtype for a in arrays]) if arrays else np.int64
    return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]) if arrays else np.zeros(0, dtype)


# ----------------------------------------------------------------------------- writing


def ids_dtype(vocab: int) -> np.dtype:
    """The smallest dtype that holds piece ids below ``vocab``."""
    return np.dtype(np.uint16) if vocab <= 1 << 16 else np.dtype(np.int32)


class PartWriter:
    """Writes one part into ``<folder>.partial`` and commits it by renaming it to ``folder``: a part
    that is there is complete (a killed writer leaves only a ``.partial`` folder, removed on the
    next attempt). Everything is appended to files as it comes, so the memory a part takes does
    not grow with it."""

    BLOCK = 1 << 20  # items converted at a time when committing

    def __init__(self, folder: Path, vocab: int, key: dict, with_hashes: bool = False) -> None:
        self.folder, self.key, self.with_hashes = folder, key, with_hashes
        self.tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.dtype = ids_dtype(vocab)
        names = ["src.ids", "tgt.ids", "src.lens64", "tgt.lens64", "lines"] + (
            ["hashes"] if with_hashes else []
        )
        self.files = {name: open(self.tmp / name, "wb") for name in names}  # noqa: SIM115 (closed in commit)
        self.pairs = 0
        self.longest = 0

    def append(
        self,
        src: tuple[np.ndarray, np.ndarray],
        tgt: tuple[np.ndarray, np.ndarray],
        lines: np.ndarray,
        hashes: np.ndarray | None = None,
    ) -> None:
        """Pairs as (flat ids, lengths) per side, their line numbers and (with dedup) hashes."""
        for side, (ids, lens) in (("src", src), ("tgt", tgt)):
            self.files[f"{side}.ids"].write(np.asarray(ids, dtype=self.dtype).tobytes())
            self.files[f"{side}.lens64"].write(np.asarray(lens, dtype=np.int64).tobytes())
            if len(lens):
                self.longest = max(self.longest, int(np.max(lens)))
        self.files["lines"].write(np.asarray(lines, dtype=np.int64).tobytes())
        if self.with_hashes:
            assert hashes is not None
            self.files["hashes"].write(np.asarray(hashes, dtype=np.uint64).tobytes())
        self.pairs += len(lines)

    def commit(self, counts: dict) -> None:
        for f in self.files.values():
            f.close()
        lens_dtype = np.dtype(np.uint16) if self.longest < 1 << 16 else np.dtype(np.uint32)
        for side in ("src", "tgt"):  # lengths in their dtype, and offsets, a block at a time
            lens64 = self.tmp / f"{side}.lens64"
            with open(self.tmp / f"{side}.lens", "wb") as fl, open(self.tmp / f"{side}.offsets", "wb") as fo:
                fo.write(np.zeros(1, dtype=np.int64).tobytes())
                total = 0
                for block in _blocks(lens64, np.int64, self.BLOCK):
                    fl.write(block.astype(lens_dtype).tobytes())
                    ends = total + np.cumsum(block)
                    fo.write(ends.tobytes())
                    total = int(ends[-1])
            lens64.unlink()
        for name in os.listdir(self.tmp):
            _fsync(self.tmp / name)
        meta = {
            "format": FORMAT,
            "pairs": self.pairs,
            "ids_dtype": self.dtype.name,
            "lens_dtype": lens_dtype.name,
            "hashes": self.with_hashes,
            "key": self.key,
            "counts": counts,
        }
        write_json(self.tmp / "meta.json", meta)
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(self.tmp, self.folder)
        fsync_dir(self.folder.parent)


def _blocks(path: Path, dtype: type, items: int) -> Iterator[np.ndarray]:
    """A file of ``dtype`` items, ``items`` at a time."""
    with open(path, "rb") as f:
        while chunk := f.read(items * np.dtype(dtype).itemsize):
            yield np.frombuffer(chunk, dtype=dtype)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def read_meta(folder: Path) -> dict:
    """A part's or store's meta.json (an NmtError if it is missing or damaged)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise NmtError(f"{folder}: not a complete prepared part ({type(e).__name__})") from None
    if meta.get("format") != FORMAT:
        raise NmtError(
            f"{folder}: prepared with another format ({meta.get('format')}, this nmt reads {FORMAT})"
        )
    return meta


def read_json(path: Path) -> dict:
    """A JSON object from a file; {} if it is missing, damaged or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_json(path: Path, value: object) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(value, indent=1))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_store(folder: Path) -> Pairs:
    """A committed store: its parts, in order, as one sequence of pairs."""
    meta = read_meta(folder)
    try:
        return Pairs([Part(folder / name) for name in meta["parts"]])
    except (OSError, ValueError, KeyError) as e:
        raise NmtError(f"{folder}: prepared data is damaged ({type(e).__name__}: {str(e)[:120]})") from None
