"""Durable writes: bytes that are on disk, not only in the page cache, when the call returns.

For every place that must keep a record once it has said it holds it: the file
sink before it accepts a batch, the spool before a destructive read is parsed,
the dead-letter file before a checkpoint moves past a record, checkpoint files.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (one ``os.write`` may take less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_synced(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` and fsync it."""
    write_all(fd, data)
    os.fsync(fd)


def create_synced(path: str | Path, data: bytes) -> None:
    """Create ``path`` (it must not exist yet), write ``data`` and fsync it (not its directory)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_synced(fd, data)
    finally:
        os.close(fd)


def fsync_dir(directory: str | Path) -> None:
    """Make new or renamed entries of ``directory`` durable (a file's fsync does not cover its name).

    Nothing to do where a directory cannot be opened (Windows has no ``O_DIRECTORY``).
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
