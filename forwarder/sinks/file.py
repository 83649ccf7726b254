"""File sink: ECS documents as NDJSON, size-based rotation, fsync before acceptance.

``path`` is the active file. When it would grow past ``max_bytes`` it is renamed
to ``<path>.1`` (older ones shift to ``.2`` … ``.<keep>``; the oldest is removed)
and a new file is started. ``send`` writes; ``sync`` fsyncs, and only then does
the pipeline count the events written since the previous ``sync`` as accepted
(see ``forwarder.sinks.base``): one fsync covers ``SYNC_EVENTS`` events or
``SYNC_BYTES`` bytes, the end of a pass, or ``SYNC_AGE`` seconds, whichever comes
first, so an accepted event survives a crash or power loss while the disk is not
asked to flush for every page. A half-written last line (a crash mid-write, never
acknowledged) is cut on reopen.
"""

from __future__ import annotations

import os
from pathlib import Path

from forwarder import jsoncodec
from forwarder.config import SinkConfig
from forwarder.durable import write_all
from forwarder.ecs import to_ecs
from forwarder.errors import SinkError
from forwarder.event import AuditEvent
from forwarder.options import Option
from forwarder.sinks.base import Rejected, Sink


_CHUNK = 256
#: One fsync per this many events or bytes written at most (``sync_due``).
SYNC_EVENTS = 10_000
SYNC_BYTES = 8 * 1024 * 1024


class FileSink(Sink):
    """Append ECS NDJSON to a local file."""

    TYPE = "file"
    OPTIONS = {
        "path": Option("path", help="NDJSON file to append to"),
        "max_bytes": Option("int", 256 * 1024 * 1024, "rotate when the file would exceed this size", minimum=1024),
        "keep": Option("int", 5, "rotated files to keep", minimum=0, maximum=1000),
        "namespace": Option("str", "default", "data_stream.namespace written into each document"),
    }

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.path = Path(self.options["path"])
        self.max_bytes: int = self.options["max_bytes"]
        self.keep: int = self.options["keep"]
        self.namespace: str = self.options["namespace"]
        self._fd: int | None = None
        self._size = 0
        self._unsynced_events = 0
        self._unsynced_bytes = 0

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            except OSError as exc:
                raise SinkError(f"sink {self.name}: cannot open {self.path}: {exc.strerror}") from None
            self._size = os.fstat(self._fd).st_size
            if self._size:
                self._drop_partial_tail()
        return self._fd

    def _drop_partial_tail(self) -> None:
        """Cut a half-written last line left by a crash mid-write (it was never acknowledged)."""
        assert self._fd is not None
        with open(self.path, "rb") as fh:
            pos = self._size
            while pos > 0:
                step = min(65536, pos)
                fh.seek(pos - step)
                chunk = fh.read(step)
                if pos == self._size and chunk.endswith(b"\n"):
                    return
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    pos = pos - step + newline + 1
                    break
                pos -= step
        os.ftruncate(self._fd, pos)
        self._size = pos

    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        """Write every event (durable once ``sync`` returns)."""
        ns = self.namespace
        dumps = jsoncodec.dumps
        fd = self._open()
        try:
            for at in range(0, len(events), _CHUNK):  # small writes keep peak memory flat
                data = b"".join([dumps(to_ecs(e, ns)) + b"\n" for e in events[at : at + _CHUNK]])
                if self._size and self._size + len(data) > self.max_bytes:
                    self._rotate()  # closing syncs the full file first
                    fd = self._open()
                write_all(fd, data)
                self._size += len(data)
                self._unsynced_bytes += len(data)
        except OSError as exc:
            raise SinkError(f"sink {self.name}: cannot write {self.path}: {exc.strerror}") from None
        self._unsynced_events += len(events)
        return []

    def sync_due(self) -> bool:
        """After ``SYNC_EVENTS`` events or ``SYNC_BYTES`` bytes."""
        return self._unsynced_events >= SYNC_EVENTS or self._unsynced_bytes >= SYNC_BYTES

    def sync(self) -> None:
        """fsync what was written since the last sync."""
        if self._fd is not None and (self._unsynced_events or self._unsynced_bytes):
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise SinkError(f"sink {self.name}: cannot write {self.path}: {exc.strerror}") from None
        self._unsynced_events = self._unsynced_bytes = 0

    def _rotate(self) -> None:
        self.close()
        try:
            for i in range(self.keep, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if i == self.keep:
                    older.unlink(missing_ok=True)
                else:
                    newer = self.path.with_name(f"{self.path.name}.{i + 1}")
                    if older.exists():
                        older.replace(newer)
            if self.keep:
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise SinkError(f"sink {self.name}: cannot rotate {self.path}: {exc.strerror}") from None

    def check(self) -> str:
        """The directory must be writable."""
        self._open()
        return f"writing to {self.path}"

    def close(self) -> None:
        """Sync and close the file."""
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None
