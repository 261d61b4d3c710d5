"""``precision=auto`` for decoding: bf16 or float32, whichever runs the decoder step faster here.

Whether bf16 pays in decoding depends on the CPU and on the batch, not only on whether the CPU
computes bf16 natively. On an Intel Xeon with AMX, bf16 was slower than float32 for greedy
search at batch 64 and at batch 1 and faster only for beam 5 at batch 64 (issue 35); on an AMD
Zen 4 with AVX512-BF16 it was faster at batch 1 (docs/benchmarks.md, 2026-12-07). So where the
CPU has native bf16, the translator times the decoder step both ways, at the rows its batches
will have (beam x sentences per batch), before the first translation, and keeps bf16 only if it
is clearly faster (``MARGIN``), so that a near tie does not flip between runs. A CPU without
native bf16 gets float32 without a probe (bf16 is emulated there and slower), a GPU bf16 where
it has it, as before. ``precision=fp32`` or ``bf16`` skips the probe: same bits on every run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nmt.data.tokenizer import BOS
from nmt.runtime import autocast, native_bf16
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
