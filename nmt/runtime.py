"""Where and how code runs: device, autocast dtype, CPU threads, decoding workers, and a description of the hardware."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from nmt import NmtError
from nmt.config import Precision


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda:<local_rank> when CUDA is available, else cpu; anything else as given (checked)."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise NmtError(f"device={name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NmtError(f"device={name} but CUDA is not available here (use device=auto or cpu)")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def cpu_fields() -> dict[str, str]:
    """The first processor's fields in Linux's /proc/cpuinfo ("model name", "cpu family",
    "model", "flags", ...); empty elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first processor's block
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    return set(cpu_fields().get("flags", "").split())


def native_bf16(device: torch.device) -> str | None:
    """Why bf16 is fast on this device (the instructions that compute it), or None if it is not."""
    if device.type == "cuda":
        return "CUDA bf16" if torch.cuda.is_bf16_supported() else None
    flags = cpu_flags()
    found = [
        name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16")) if flag in flags
    ]
    return " and ".join(found) or None


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device; None means plain float32.

    ``auto``: bf16 where the hardware computes it natively (CUDA with bf16; CPUs with AMX-BF16 or
    AVX512-BF16, where oneDNN's bf16 matrix products run about twice as fast as float32 ones),
    float32 elsewhere (on a CPU without them bf16 is emulated and slower than float32)."""
    if precision == Precision.auto:
        return torch.bfloat16 if native_bf16(device) else None
    if precision == Precision.fp16 and device.type != "cuda":
        raise NmtError("precision=fp16 needs CUDA (on CPU use fp32 or bf16)")
    return {Precision.fp32: None, Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory so far: the process's resident set on a CPU, allocated tensors on a GPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


# At most this many workers when ``workers=0`` (auto): each worker's Python (the search's step loop)
# runs under the one interpreter lock, so many single-threaded workers end up waiting for it.
# Measured on 2 cores only (docs/benchmarks.md, 2026-12-02, evening).
MAX_AUTO_WORKERS = 4

_T = TypeVar("_T")
_R = TypeVar("_R")


def plan_workers(requested: int, device: torch.device, autocast: bool = False) -> tuple[int, int]:
    """(workers, intra-op threads each) for decoding batches side by side; (1, all threads): one
    batch at a time.

    On a CPU, batches decoded side by side, each on fewer threads, use the cores better than one
    batch at a time on all of them: a beam's step is many small operations that one thread runs
    about as fast as several. ``requested``: 0 (auto) takes the largest count up to
    ``MAX_AUTO_WORKERS`` that divides the intra-op threads, so every worker gets the same number
    and a batch's arithmetic does not depend on which worker took it; 1: one batch at a time;
    more: as asked, at most one worker per thread, the threads shared out evenly (any remainder
    unused). GPUs get one worker, and so does auto under reduced-precision ``autocast`` (bf16 on
    a CPU): there workers were measured to gain nothing in a warm process and to cost a fresh one
    its kernels' start-up (docs/benchmarks.md), so auto keeps one batch at a time.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or (autocast and requested == 0):
        return 1, threads
    if requested > 0:
        n = min(requested, threads)
    else:
        n = next(k for k in range(min(threads, MAX_AUTO_WORKERS), 0, -1) if threads % k == 0)
    return n, threads // n


class DecodePool:
    """Threads that decode batches side by side on a CPU, each running PyTorch on ``threads``
    intra-op threads; kept for the life of its owner (a ``Translator``), so per-thread state
    (MKL's buffers, oneDNN's and autocast's caches) is built once, not per call.

    PyTorch keeps one process-wide thread count that a new thread copies when it first runs an
    operation; setting a worker's own count writes it too. So every worker starts here, sets its
    count while the constructor waits, and the constructor then puts the caller's count back.
    """

    def __init__(self, workers: int, threads: int) -> None:
        self.workers, self.threads = workers, threads
        ready = threading.Barrier(workers + 1)

        def start() -> None:
            torch.get_num_threads()  # take PyTorch's per-thread start-up now, so it cannot undo the next line
            torch.set_num_threads(threads)
            ready.wait()

        before = torch.get_num_threads()
        self._pool = ThreadPoolExecutor(workers, "nmt-decode", initializer=start)
        try:
            for _ in range(workers):  # a thread is started for each task while none is idle
                self._pool.submit(int)
            ready.wait(timeout=60)
        finally:
            torch.set_num_threads(before)

    def map(self, fn: Callable[[_T], _R], items: Iterable[_T], device: torch.device) -> Iterator[_R]:
        """``map(fn, items)``, results in order, computed by the workers. The caller's grad mode and
        autocast (thread-local in PyTorch) hold in the workers too. When the caller stops early (an
        error, Ctrl-C), items not yet started are cancelled; those running finish in the background."""
        grad = torch.is_grad_enabled()
        kind = device.type
        cast = dict(
            device_type=kind,
            dtype=torch.get_autocast_dtype(kind),
            enabled=torch.is_autocast_enabled(kind),
            cache_enabled=torch.is_autocast_cache_enabled(),
        )

        def call(item: _T) -> _R:
            with torch.set_grad_enabled(grad), torch.autocast(**cast):
                return fn(item)

        futures = [self._pool.submit(call, item) for item in items]
        try:
            for f in futures:
                yield f.result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def describe_precision(precision: Precision, device: torch.device) -> str:
    """One line for the log: the precision used, and why (for ``auto``)."""
    dtype = autocast_dtype(precision, device)
    used = "fp32" if dtype is None else str(dtype).replace("torch.", "") + " autocast"
    if precision != Precision.auto:
        return used
    why = native_bf16(device)
    return f"{used} (precision=auto: " + (f"{why} found)" if why else "no native bf16 on this device)")


def hardware(device: torch.device) -> str:
    """One line: the CPU or GPU, threads, torch version."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{name}, CUDA {torch.version.cuda}, torch {torch.__version__}"
    cpu = cpu_fields().get("model name") or platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, torch {torch.__version__}"


def git_commit() -> str | None:
    """The commit of the source checkout nmt runs from (with "-dirty" if it has changes), if any."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
