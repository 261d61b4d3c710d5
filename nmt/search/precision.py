"""``precision=auto`` for decoding: bf16 or float32, whichever runs the decoder step faster here.

Whether bf16 pays in decoding depends on the CPU and on the batch, not only on whether the CPU
computes bf16 natively. On an Intel Xeon with AMX, bf16 was slower than float32 for greedy
search at batch 64 and at batch 1 and faster only for beam 5 at batch 64 (issue 35); on an AMD
Zen 4 with AVX512-BF16 it was faster at batch 1 (docs/benchmarks.md, 2026-12-07). So where the
CPU has native bf16, the translator times the decoder step both ways, at the rows its batches
will have (beam x sentences per batch), before the first translation, and keeps bf16 only if it
is clearly faster (``MARGIN``), so that a near tie does not flip between runs. A CPU without
native bf16 gets float32 without a probe (bf16 is emulated there and slower), a GPU bf16 where
it has it, as before. ``precision=fp32`` or ``bf16`` skips the probe.

A choice is remembered (``remembered``): in ``$NMT_CACHE_DIR`` (default ``~/.cache/nmt``), keyed
by the CPU, PyTorch's version, the model's weight shapes and the rows, so the same command on the
same machine decodes with the same arithmetic, and gives the same bits, every time, and a
one-line translation does not pay for a probe (up to ~0.4 s at 320 rows). Delete the file to
measure again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt.data.tokenizer import BOS
from nmt.runtime import autocast, cpu_fields, cpu_flags, hardware, native_bf16
from nmt.search.common import SearchModel

MARGIN = 1.10  # bf16 must be this much faster than float32 to be chosen
PROBE_SOURCE_LEN = 16  # source pieces of the probe's sentences
PROBE_MAX_SENTENCES = 64  # sentences per probe batch when batches have no cap


@dataclass
class Choice:
    dtype: torch.dtype | None  # the autocast dtype (None: float32)
    why: str  # for the log


def step_seconds(
    model: SearchModel,
    dtype: torch.dtype | None,
    sentences: int,
    beam: int,
    device: torch.device,
    steps: int = 4,
) -> float:
    """Seconds per decoder step on ``sentences`` x ``beam`` rows under autocast ``dtype`` (warm:
    the kernels of these shapes are compiled before the timing)."""
    src = torch.full(
        (sentences, PROBE_SOURCE_LEN), 4, dtype=torch.long, device=device
    )  # (sentences, src_len)
    lens = torch.full((sentences,), PROBE_SOURCE_LEN, dtype=torch.long)
    with torch.no_grad(), autocast(device, dtype):
        mem, state = model.encode(src, lens)
        rows = torch.arange(sentences, device=device).repeat_interleave(beam)  # (sentences * beam,)
        mem, state = mem.select(rows), state.select(rows)
        tokens = torch.full((sentences * beam,), BOS, dtype=torch.long, device=device)
        for _ in range(2):
            model.decode_step(tokens, state, mem)
        t0 = time.perf_counter()
        for _ in range(steps):
            model.decode_step(tokens, state, mem)
        return (time.perf_counter() - t0) / steps


def choose(
    model: SearchModel,
    device: torch.device,
    sentences: int,
    beam: int,
    timer: Callable[..., float] | None = None,
    rounds: int = 2,
) -> Choice:
    """bf16 or float32 for ``precision=auto`` decoding of batches of ``sentences`` x ``beam`` rows
    (``timer``: ``step_seconds`` unless given)."""
    timer = timer or step_seconds
    found = native_bf16(device)
    if device.type != "cpu":
        return Choice(torch.bfloat16 if found else None, f"{found} found" if found else "no bf16 on this GPU")
    if not found:
        return Choice(None, "no native bf16 on this CPU")
    fp32 = bf16 = float("inf")
    for _ in range(rounds):  # alternated, the best of each: a shared machine's speed drifts
        fp32 = min(fp32, timer(model, None, sentences, beam, device))
        bf16 = min(bf16, timer(model, torch.bfloat16, sentences, beam, device))
    rows = sentences * beam
    timing = f"decoder step at {rows} rows: bf16 {1000 * bf16:.2f} ms, fp32 {1000 * fp32:.2f} ms"
    if bf16 * MARGIN <= fp32:
        return Choice(torch.bfloat16, f"{found} found; {timing}")
    return Choice(None, f"{found} found, but bf16 is not {MARGIN:.2f}x faster: {timing}")


def cache_file() -> Path:
    """Where decisions are remembered: ``$NMT_CACHE_DIR/decode_precision.json`` (default
    ``$XDG_CACHE_HOME/nmt``, else ``~/.cache/nmt``)."""
    root = os.environ.get("NMT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nmt"
    )
    return Path(root) / "decode_precision.json"


def _cpu_identity() -> str:
    """The CPU as a cloud guest may see several kinds under one name ("AMD EPYC"): family, model
    and the vector flags that decide the kernels."""
    fields = cpu_fields()
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")))
    return f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')} {' '.join(flags)}"


def _key(model: SearchModel, device: torch.device, sentences: int, beam: int) -> str:
    shapes = [tuple(p.shape) for p in model.parameters()]  # type: ignore[attr-defined]
    weights = hashlib.sha1(repr(shapes).encode()).hexdigest()[:16]
    return f"{hardware(device)} | {_cpu_identity()} | weights {weights} | {sentences} x {beam} rows"


def remembered(model: SearchModel, device: torch.device, sentences: int, beam: int) -> Choice:
    """``choose``, or the choice an earlier process made for the same machine, model shape and
    rows. The file is best effort: one that cannot be read or written means a probe, not an error."""
    if device.type != "cpu" or not native_bf16(device):
        return choose(model, device, sentences, beam)  # nothing is timed
    path, key = cache_file(), _key(model, device, sentences, beam)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), dict):
        entry = known[key]
        dtype = torch.bfloat16 if entry.get("dtype") == "bf16" else None
        return Choice(dtype, f"{entry.get('why', '')}; remembered from {entry.get('date', '?')} ({path})")
    c = choose(model, device, sentences, beam)
    known = known if isinstance(known, dict) else {}
    known[key] = {"dtype": "bf16" if c.dtype else "fp32", "why": c.why, "date": time.strftime("%Y-%m-%d")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # whole or not at all, whoever writes last
    except OSError:
        pass
    return c
