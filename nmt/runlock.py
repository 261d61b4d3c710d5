"""One writer per run directory: an exclusive lock that nmt-prepare and nmt-train hold while they write.

``fcntl.flock`` on ``<run_dir>/.lock``: the kernel releases it when the process ends, however it
ends (SIGKILL included), so a crashed run never leaves a stale lock behind. A second process
that wants the same run directory is refused at once with a message naming the holder, instead
of interleaving its checkpoints with the first one's. Where ``fcntl`` does not exist (Windows),
nothing is locked.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from nmt import NmtError

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """``with RunLock(run_dir, "nmt-train"):`` ... raises NmtError if another process holds it."""

    def __init__(self, folder: Path, holder: str) -> None:
        self.folder, self.holder = Path(folder), holder
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if fcntl is None:
            return self
        path = self.folder / ".lock"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise NmtError(f"{e.filename or path}: cannot write: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise NmtError(
                f"{self.folder} is in use by {other}; wait for it to finish, or use another run_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"{self.holder} (pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode(), 0
        )
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
