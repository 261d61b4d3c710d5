"""Files of lines in and out of a Translator: exactly one output line per input line, in order.

Input is read as bytes and split on "\\n" only (``read_raw_lines``), so the line count is what
``wc -l`` says whatever the text holds. Output to a file goes to a temporary file in the same
folder, renamed over the target at the end (``AtomicOutput``): an error or an interrupt never
leaves a half-written file; a write that fails (full disk, read-only folder) ends in one error
naming the file. ``translate_file`` is what nmt-translate and ``Translator.translate_file`` run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from nmt import NmtError
from nmt.config import OutputFormat

if TYPE_CHECKING:
    from nmt.translator import Translation, Translator


def read_raw_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines of a binary stream split on b"\\n" only (never on other Unicode line breaks)."""
    for raw in stream:
        yield raw[:-1] if raw.endswith(b"\n") else raw


def count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def format_line(t: Translation, fmt: OutputFormat, lineno: int) -> str:
    """One output line: the text, or a JSON record (scores, n-best, pieces and attention)."""
    if fmt == OutputFormat.text:
        return t.text
    rec = {"line": lineno, "translation": t.text, "score": t.score, "log_prob": t.log_prob}
    if len(t.nbest) > 1:
        rec["nbest"] = [{"translation": s, "score": sc, "log_prob": lp} for s, sc, lp in t.nbest]
    if t.src_pieces is not None:
        rec.update(src_pieces=t.src_pieces, tgt_pieces=t.tgt_pieces, attention=t.attention)
    return json.dumps(rec, ensure_ascii=False)


class AtomicOutput:
    """stdout ("-"), or a file written atomically; a failed write is an NmtError naming the file."""

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self.name = "<stdout>" if self.target == "-" else self.target
        self.tmp: Path | None = None
        self.f: BinaryIO | None = None

    def __enter__(self) -> AtomicOutput:
        if self.target == "-":
            self.f = sys.stdout.buffer
            return self
        dest = Path(self.target)
        if not dest.parent.is_dir():
            raise NmtError(f"{dest}: the output folder does not exist")
        self.tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
        try:
            self.f = open(self.tmp, "wb")  # noqa: SIM115 (closed in __exit__)
        except OSError as e:
            raise NmtError(f"{dest}: cannot write: {e.strerror or e}") from None
        return self

    def write(self, text: str) -> None:
        assert self.f is not None
        try:
            self.f.write(text.encode("utf-8"))
        except BrokenPipeError:
            raise
        except OSError as e:
            raise NmtError(f"{self.name}: cannot write: {e.strerror or e}") from None

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        assert self.f is not None
        try:
            if self.tmp is None:
                self.f.flush()
                return
            self.f.close()
            if exc_type is None:
                os.replace(self.tmp, self.target)
        except BrokenPipeError:
            raise
        except OSError as e:
            if exc_type is None:
                raise NmtError(f"{self.name}: cannot write: {e.strerror or e}") from None
        finally:
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)


@dataclass
class FileStats:
    lines: int
    unknown: int  # unknown target pieces in the model's outputs


def translate_file(
    translator: Translator,
    source: str | Path,
    target: str | Path,
    fmt: OutputFormat = OutputFormat.text,
    chunk_lines: int = 20000,
    progress: Callable[[int | None], Callable[[int], None]] | None = None,
) -> FileStats:
    """Translate ``source`` ("-": stdin) into ``target`` ("-": stdout). ``progress(total)`` returns
    the callback that counts lines done (total: the line count, None for stdin)."""
    with contextlib.ExitStack() as stack:
        if str(source) == "-":
            src, name, total = sys.stdin.buffer, "<stdin>", None
        else:
            path = Path(source)
            if not path.is_file():
                raise NmtError(f"{path}: input file not found")
            try:
                src = stack.enter_context(open(path, "rb"))
            except OSError as e:
                raise NmtError(f"{path}: cannot read: {e.strerror or e}") from None
            name, total = str(path), count_lines(path)
        update = progress(total) if progress is not None else None
        out = stack.enter_context(AtomicOutput(target))
        n = unknown = 0
        for n, t in enumerate(translator.stream(read_raw_lines(src), name, chunk_lines, update), start=1):
            out.write(format_line(t, fmt, n) + "\n")
            unknown += t.unknown
    return FileStats(n, unknown)
