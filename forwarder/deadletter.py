"""Dead-letter file: records that could not be normalized or that a sink rejected.

One NDJSON line per record: when, which source/sink, the reason, and the record
itself. Each write is fsynced before it returns, so a checkpoint that moves past
a dead-lettered record never loses it.
"""

from __future__ import annotations

import os
import reprlib
import threading
from pathlib import Path
from typing import Any

from forwarder import jsoncodec
from forwarder.durable import write_synced
from forwarder.errors import StateError
from forwarder.secrets import redact
from forwarder.timeutil import format_time, now


class DeadLetters:
    """Appends dead letters to ``<dir>/deadletter.ndjson`` and counts them per origin."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "deadletter.ndjson"
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def write(self, origin: str, reason: str, record: Any) -> None:
        """Durably record one rejected record. ``origin`` is ``source:NAME`` or ``sink:NAME``."""
        self.write_many(origin, [(reason, record)])

    def write_many(self, origin: str, items: list[tuple[str, Any]]) -> None:
        """Durably record several rejected records in one fsync.

        Never fails because of a record: one that cannot be written as JSON is kept as
        its ``repr``. Only a disk problem raises (``StateError``): then nothing may move on.
        """
        if not items:
            return
        stamp = format_time(now())
        lines = b"".join(_line(stamp, origin, reason, record) for reason, record in items)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    write_synced(fd, lines)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise StateError(f"cannot write dead letters to {self.path}: {exc.strerror or exc}") from None
            self.counts[origin] = self.counts.get(origin, 0) + len(items)


def _line(stamp: str, origin: str, reason: Any, record: Any) -> bytes:
    """One dead-letter line; a record JSON cannot hold is written as ``record_repr`` instead."""
    entry = {"time": stamp, "origin": origin, "reason": redact(str(reason))}
    try:
        return jsoncodec.dumps({**entry, "record": record}) + b"\n"
    except Exception as exc:  # any value at all: the dead-letter write is the last safety net
        entry["record_repr"] = reprlib.repr(record)
        entry["reason"] += f" (record not JSON: {type(exc).__name__})"
        return jsoncodec.dumps(entry) + b"\n"
