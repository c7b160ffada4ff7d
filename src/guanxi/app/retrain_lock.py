"""One retrain at a time: an exclusive ``flock`` on a lock file (released by the kernel when the
holder exits, SIGKILL included, so a killed retrain never leaves a stale lock)."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class RetrainBusy(RuntimeError):
    """Another retrain holds the lock."""


class RetrainLock:
    """Context manager holding an exclusive lock on ``path``.

    Raises:
        RetrainBusy: on enter, when another process holds it (the message names its pid).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> "RetrainLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RetrainBusy(f"another retrain is running (pid {holder}, lock {self.path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
