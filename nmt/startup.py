"""What a command sets in its process before torch is imported: how the C library's allocator
reuses memory and how many oneDNN kernels are kept. Nothing here imports torch, so a command can
learn what else it needs (``nmt.model.peek``) and start it while torch loads."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

# oneDNN primitives kept per cache (bound_kernel_caches), by construction: a training step on
# one batch shape looks up at most PRIMITIVES_PER_SHAPE primitives (55-57 with the recipes'
# models; tests/unit/test_kernel_cache.py checks the bound), and the trainer pads lengths so
# that an epoch makes at most TRAIN_SHAPES shapes (train.max_shapes), so the cache holds every
# kernel of the steady state on any CPU. A cache smaller than one step's set (8, the earlier
# setting) re-created kernels at every step: a third of bf16's speed on an Intel CPU with AMX
# (issue 35). Memory follows the kernels actually made, ~0.5 MiB each, not the capacity.
PRIMITIVES_PER_SHAPE = 64
TRAIN_SHAPES = 32

# Decoding, by construction too: under bf16 autocast on a CPU a decoder step's products run on
# step_rows(rows) rows (Seq2Seq.decode_step pads the hypotheses up to it), so however the rows of
# a search shrink as sentences finish, and whatever the batches, the step's products come in at
# most len(step_row_sizes(DECODE_MAX_ROWS)) shapes, each at most PRIMITIVES_PER_STEP primitives
# (tests/unit/test_kernel_cache.py counts both). Attention's per-step products and the encoder's
# once-per-batch products run in float32 on a CPU (no per-shape kernels). A batch holds at most
# batch_size rows (4,096 by default: source pieces per batch times the beam, each sentence at
# least one piece); a larger batch_size makes a few more sizes, one per quarter octave.
PRIMITIVES_PER_STEP = 8
DECODE_MAX_ROWS = 4096
STEP_ROWS_EXACT = 8  # up to this many rows, a step runs on exactly its rows
STEP_ROWS_PER_OCTAVE = 4  # above it, the sizes per doubling: at most 1/4 more rows than hypotheses


def _round_up(rows: int, exact: int, per_octave: int) -> int:
    """``rows`` itself up to ``exact``, then the next of ``per_octave`` (a power of two) sizes per
    doubling: at most 1/per_octave more rows than asked."""
    if rows <= exact:
        return rows
    step = 1 << max(0, (rows - 1).bit_length() - per_octave.bit_length())  # a power of two
    return -(-rows // step) * step


def step_rows(rows: int) -> int:
    """The rows a decoder step's products run on for ``rows`` hypotheses: ``rows`` itself up to
    8, then the next of four sizes per doubling (10, 12, 14, 16, 20, 24, 28, 32, 40, 48, ...)."""
    return _round_up(rows, STEP_ROWS_EXACT, STEP_ROWS_PER_OCTAVE)


# Training's encoder (nmt.model.bilstm under bf16 autocast on a CPU) runs its products over all
# steps once per layer on the batch's packed rows (every source token), a count that differs from
# batch to batch: they run on packed_rows(N) rows, the rows past N zero, so that an epoch makes at
# most PACKED_ROWS_PER_OCTAVE sizes per doubling of N, each at most PRIMITIVES_PER_PACKED_ROWS
# primitives (four products, two layer widths).
PACKED_ROWS_PER_OCTAVE = 8  # at most 1/8 more rows than source tokens
PACKED_ROWS_EXACT = 64
PRIMITIVES_PER_PACKED_ROWS = 8
TRAIN_MAX_PACKED_ROWS = 1 << 16  # source tokens in a batch that the training cache is sized for


def packed_rows(rows: int) -> int:
    """The rows the encoder's products over all steps run on for ``rows`` packed source tokens:
    ``rows`` up to 64, then the next of eight sizes per doubling (72, 80, ..., 128, 144, ...)."""
    return _round_up(rows, PACKED_ROWS_EXACT, PACKED_ROWS_PER_OCTAVE)


def step_row_sizes(max_rows: int, rounding: Callable[[int], int] = step_rows) -> list[int]:
    """Every size ``rounding`` (``step_rows`` or ``packed_rows``) gives for 1 to ``max_rows`` rows."""
    sizes, rows = [], 1
    while rows <= max_rows:
        sizes.append(rounding(rows))
        rows = sizes[-1] + 1
    return sizes


# the training cache: every batch shape's kernels, and the encoder's for every packed row size
# up to TRAIN_MAX_PACKED_ROWS (144 sizes, 1,152 primitives at most)
ENCODER_KERNELS = PRIMITIVES_PER_PACKED_ROWS * len(step_row_sizes(TRAIN_MAX_PACKED_ROWS, packed_rows))


def train_kernel_cache(shapes: int) -> int:
    """oneDNN kernels a training run keeps for reuse: those of ``shapes`` batch shapes and the encoder's."""
    return PRIMITIVES_PER_SHAPE * shapes + ENCODER_KERNELS


KERNEL_CACHE_TRAIN = train_kernel_cache(TRAIN_SHAPES)
KERNEL_CACHE_DECODE = 512  # >= PRIMITIVES_PER_STEP * len(step_row_sizes(DECODE_MAX_ROWS)) = 352


def tune_allocator() -> bool:
    """Keep large CPU tensors on glibc's heap instead of fresh mmap()s.

    A training step allocates and frees several (tokens x vocab) float tensors; at 32 MiB and up
    glibc maps each one anew, and the page faults of touching fresh pages cost ~20% of a CPU
    step (measured with bench/train_speed.py). Raising the mmap and trim thresholds lets freed
    blocks be reused. Peak memory is unchanged; memory is returned to the OS at exit. A no-op
    where the C library is not glibc. Returns whether the settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


_CACHE_VARS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def kernel_cache_capacity() -> int:
    """The oneDNN primitive cache's capacity as set in the environment (1,024: oneDNN's default)."""
    try:
        return int(os.environ.get(_CACHE_VARS[0], "1024"))
    except ValueError:
        return 1024


def raise_kernel_caches(capacity: int) -> None:
    """Raise both caches to ``capacity``: oneDNN and ideep read the setting when they make their
    first primitive, so this holds if no oneDNN product has run yet in the process."""
    for var in _CACHE_VARS:
        os.environ[var] = str(capacity)


def bound_kernel_caches(capacity: int = KERNEL_CACHE_DECODE) -> None:
    """Set how many oneDNN kernels are kept for reuse (call before the first bf16 product).

    On a CPU, bf16 products run as oneDNN primitives, each JIT-compiled for one exact shape and
    cached for reuse, by oneDNN (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``) and by PyTorch's ideep layer
    (``LRU_CACHE_CAPACITY``), up to 1,024 of each by default. Each kernel kept costs about
    0.5-0.7 MiB, so what bounds memory is the set of shapes a process meets (the trainer bounds
    it, see KERNEL_CACHE_TRAIN); the capacity only has to hold that set, or kernels are compiled
    again and again (0.2 ms to several ms each, depending on the CPU). Values already in the
    environment win. Has no effect once oneDNN has created its first primitive.
    """
    for var in _CACHE_VARS:
        os.environ.setdefault(var, str(max(capacity, 1)))  # ideep's cache cannot be 0
