"""nmt-translate: a checkpoint and a file (or stdin) in, one translation per input line out.

Output to a file is written to a temporary file and renamed at the end, so an error or an
interrupt never leaves a half-written output behind. On a terminal, a progress bar shows
sentences/s; with a terminal on stdin and no input file, it runs interactively.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from nmt.checks import validate_translate
from nmt.cli.common import hydra_cli
from nmt.config import OutputFormat, TranslateJob
from nmt.textio import format_line, translate_file

if TYPE_CHECKING:
    from nmt.translator import Translator

log = logging.getLogger(__name__)


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


def prefetch_text_tools(ckpt: Any, processed: bool, keep_segmentation: bool) -> None:
    """Before torch is imported: if the model's text processing will need sacremoses, start
    importing it in the background (``nmt.data.text.prefetch_moses``)."""
    from nmt.data.text import TextProcessor, prefetch_moses
    from nmt.model.peek import peek_config, text_processing

    first = ckpt if isinstance(ckpt, str) else next(iter(ckpt or []), None)
    config = peek_config(first) if isinstance(first, str) else None
    if config is None:
        return
    try:
        text = TextProcessor.from_data(text_processing({"config": config}))
    except Exception:  # noqa: BLE001 - the full load reports a config it cannot read
        return
    if text.needs_moses(processed, keep_segmentation):
        prefetch_moses()


def task(cfg: TranslateJob) -> None:
    validate_translate(cfg)
    prefetch_text_tools(cfg.ckpt, cfg.processed, cfg.keep_segmentation)
    # torch from here on (most of the start-up)
    from nmt.api import load_translator
    from nmt.runtime import resolve_device, set_threads
    from nmt.translator import Options

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
        workers=cfg.workers,
        constraints=cfg.constraints,
        ordered_constraints=cfg.ordered_constraints,
    )
    translator, _ = load_translator(cfg.ckpt, device, cfg.search, options)
    is_interactive = (
        cfg.interactive if cfg.interactive is not None else cfg.input == "-" and sys.stdin.isatty()
    )
    if is_interactive:
        interactive(translator, cfg.format)
        return
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        progress = (lambda total: _progress_bar(stack, total)) if show else None
        stats = translate_file(translator, cfg.input, cfg.output, cfg.format, cfg.chunk_lines, progress)
    n, unknown = stats.lines, stats.unknown
    secs = time.perf_counter() - start
    decided = translator.decided_precision()  # None: nothing was decoded
    log.info(
        "translated %d lines in %.1fs (%.1f sentences/s)%s%s",
        n,
        secs,
        n / max(secs, 1e-9),
        "" if cfg.output == "-" else f" -> {cfg.output}",
        "" if decided is None else f" | decoding in {decided.why}",
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


main = hydra_cli("translate", task, direct=True, quick_exit=True)

if __name__ == "__main__":
    main()
