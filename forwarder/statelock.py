"""One process per state directory: an exclusive ``flock`` on ``<state dir>/forwarder.lock``.

Two forwarders on one state directory would both commit checkpoints, split a destructive
vendor queue between them and deliver duplicates. Every command that writes state holds
this lock for its whole life; the kernel drops it when the process ends, however it ends
(a SIGKILL included), so there is never a stale lock to clean up. The holder writes its pid
into the file so the refused process can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from forwarder.errors import ConfigError, StateError

LOCK_FILE = "forwarder.lock"


@contextmanager
def hold_state_dir(directory: Path) -> Iterator[None]:
    """Hold the state directory's lock (creating the directory if needed) for the ``with`` body.

    ``StateError`` (exit 1) naming the directory and the holder's pid if another process has it.
    """
    fd = _acquire(Path(directory))
    try:
        yield
    finally:
        os.close(fd)  # the last descriptor of the lock file: the lock goes with it


def _acquire(directory: Path) -> int:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError("state.dir", f"cannot use {directory}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if isinstance(exc, BlockingIOError):
            raise StateError(
                f"state: {directory} is in use by another siem-forwarder (pid {holder}); "
                "only one process may use a state directory at a time"
            ) from None
        raise StateError(f"state: cannot lock {directory / LOCK_FILE}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """The pid the holder wrote, or ``unknown`` (it may not have written it yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
