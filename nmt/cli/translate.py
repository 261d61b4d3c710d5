"""nmt-translate: a checkpoint and a file (or stdin) in, one translation per input line out.

Output to a file is written to a temporary file and renamed at the end, so an error or an
interrupt never leaves a half-written output behind. On a terminal, a progress bar shows
sentences/s; with a terminal on stdin and no input file, it runs interactively.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO

from nmt import NmtError
from nmt.cli.common import hydra_cli
from nmt.config import OutputFormat, TranslateJob, validate_translate
from nmt.runtime import describe_precision, resolve_device, set_threads
from nmt.translator import Options, Translation, Translator, load_translator, read_raw_lines

log = logging.getLogger(__name__)


def count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def format_line(t: Translation, fmt: OutputFormat, lineno: int) -> str:
    if fmt == OutputFormat.text:
        return t.text
    rec = {"line": lineno, "translation": t.text, "score": t.score, "log_prob": t.log_prob}
    if len(t.nbest) > 1:
        rec["nbest"] = [{"translation": s, "score": sc, "log_prob": lp} for s, sc, lp in t.nbest]
    if t.src_pieces is not None:
        rec.update(src_pieces=t.src_pieces, tgt_pieces=t.tgt_pieces, attention=t.attention)
    return json.dumps(rec, ensure_ascii=False)


def interactive(translator: Translator, fmt: OutputFormat) -> None:
    print("nmt interactive: type a sentence and press Enter; Ctrl-D to quit.", file=sys.stderr)
    lineno = 0
    while True:
        try:
            line = input("> ")
        except EOFError:
            print(file=sys.stderr)
            return
        lineno += 1
        t = translator.translate_detailed([line], "<stdin>", lineno)[0]
        print(format_line(t, fmt, lineno), flush=True)
        for s, score, _ in t.nbest[1:]:
            print(f"  [{score:.3f}] {s}", file=sys.stderr)


def task(cfg: TranslateJob) -> None:
    validate_translate(cfg)
    device = resolve_device(cfg.device)
    set_threads(cfg.num_threads)
    options = Options(
        batch_size=cfg.batch_size,
        max_sentences=cfg.max_sentences,
        max_input_len=cfg.max_input_len,
        on_bad_line=cfg.on_bad_line,
        with_attention=cfg.with_attention,
        keep_segmentation=cfg.keep_segmentation,
        processed=cfg.processed,
        replace_unk=cfg.replace_unk,
        precision=cfg.precision,
        quantize=cfg.quantize,
        compile=cfg.compile,
    )
    translator, _ = load_translator(cfg.ckpt, device, cfg.search, options)
    log.debug(
        "decoding: %s",
        "int8 (quantize=int8)" if cfg.quantize.value == "int8" else describe_precision(cfg.precision, device),
    )
    is_interactive = (
        cfg.interactive if cfg.interactive is not None else cfg.input == "-" and sys.stdin.isatty()
    )
    if is_interactive:
        interactive(translator, cfg.format)
        return
    with contextlib.ExitStack() as stack:
        if cfg.input == "-":
            src, name, total = sys.stdin.buffer, "<stdin>", None
        else:
            path = Path(cfg.input)
            if not path.is_file():
                raise NmtError(f"{path}: input file not found")
            src, name, total = stack.enter_context(open(path, "rb")), str(path), count_lines(path)
        show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
        update = (lambda n: None) if not show else _progress_bar(stack, total)
        start, n = time.perf_counter(), 0
        out = stack.enter_context(_Output(cfg.output))
        unknown = 0
        for n, t in enumerate(translator.stream(read_raw_lines(src), name, cfg.chunk_lines, update), start=1):
            out.write(format_line(t, cfg.format, n) + "\n")
            unknown += t.unknown
    secs = time.perf_counter() - start
    log.info(
        "translated %d lines in %.1fs (%.1f sentences/s)%s",
        n,
        secs,
        n / max(secs, 1e-9),
        "" if cfg.output == "-" else f" -> {cfg.output}",
    )
    if unknown:
        how = (
            "replaced with the source words they attend to"
            if cfg.replace_unk
            else "left as they are (replace_unk=false)"
        )
        log.info("%d unknown target pieces %s", unknown, how)


def _progress_bar(stack: contextlib.ExitStack, total: int | None):  # noqa: ANN202
    from tqdm import tqdm  # only on a terminal (importing it costs start-up time)

    return stack.enter_context(tqdm(total=total, unit="sent", dynamic_ncols=True, desc="translate")).update


class _Output:
    """stdout, or a file written atomically (temporary file in the same folder, renamed on success).
    A write that fails (full disk, file size limit, closed pipe aside) is an NmtError naming the file."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.name = "<stdout>" if target == "-" else target
        self.tmp: Path | None = None
        self.f: BinaryIO | None = None

    def __enter__(self) -> _Output:
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


main = hydra_cli("translate", task, direct=True)

if __name__ == "__main__":
    main()
