"""Where and how code runs: device, autocast dtype, CPU threads, and a description of the hardware."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys

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


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
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
