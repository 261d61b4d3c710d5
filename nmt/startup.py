"""What a command sets in its process before torch is imported: how the C library's allocator
reuses memory and how many oneDNN kernels are kept. Nothing here imports torch, so a command can
learn what else it needs (``nmt.model.peek``) and start it while torch loads."""

from __future__ import annotations

import ctypes
import os
import sys

# oneDNN primitives kept per cache (bound_kernel_caches), chosen by measurement (docs/benchmarks.md,
# 2026-12-01): training meets new shapes at every batch, and 8 runs as fast as 32 on varied data
# with memory below fp32's (32: 4-7 % above it); decoding reuses the shapes of earlier batches
# and runs 8-19 % slower at 32
KERNEL_CACHE_TRAIN = 8
KERNEL_CACHE_DECODE = 256


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


def bound_kernel_caches(capacity: int = KERNEL_CACHE_DECODE) -> None:
    """Cap the number of oneDNN kernels kept for reuse (call before the first bf16 product).

    On a CPU, bf16 products run as oneDNN primitives, each JIT-compiled for one exact shape and
    cached for reuse, by oneDNN (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``) and by PyTorch's ideep layer
    (``LRU_CACHE_CAPACITY``), up to 1,024 of each by default. Each costs about 0.7 MiB, and a
    training run with length-bucketed batches meets thousands of shapes (every batch size times
    every source length), so bf16 training memory grew by up to 1 GiB over fp32's
    (docs/benchmarks.md, 2026-12-01). Compiling a kernel takes ~0.2 ms, so a small cap costs
    little speed: in training 8 is as fast as 32 (the same products at every decoder step).
    Values already in the environment win. Has no effect once oneDNN has created its first
    primitive.
    """
    for var in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(var, str(max(capacity, 1)))  # ideep's cache cannot be 0
