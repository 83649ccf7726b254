"""Outbox: a durable per-sink buffer, so a sink outage neither blocks the sources nor forces a vendor re-read.

With ``outbox = true`` on a sink, the pipeline writes each batch for that sink to
a segment file here (fsynced, then renamed into place) and counts it as accepted:
the sources' checkpoints move on. A deliverer thread sends the segments to the
sink in order and deletes each one once the target accepted it; what the target
rejects goes to the dead-letter file. Segments left by a stopped or crashed run
are delivered first by the next one. When the outbox holds ``max_bytes``, new
batches wait (backpressure) instead of filling the disk.

Segments are NDJSON of ``AuditEvent.to_dict()``: readable with any JSON tool.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from forwarder import jsoncodec
from forwarder.durable import create_synced, fsync_dir
from forwarder.errors import SinkError
from forwarder.event import AuditEvent

SUFFIX = ".ndjson"


class Outbox:
    """Segment files of one sink, oldest first."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for stale in self.dir.glob("*.part"):
                stale.unlink()  # a write cut short by a crash: its batch was never acknowledged
        except OSError as exc:
            raise SinkError(f"outbox {self.dir}: {exc.strerror}") from None
        existing = self.segments()
        self._next = int(existing[-1].stem) + 1 if existing else 0
        self._bytes = sum(p.stat().st_size for p in existing)

    def segments(self) -> list[Path]:
        """Segment files in the order they were written."""
        return sorted(self.dir.glob(f"*{SUFFIX}"))

    @property
    def size(self) -> int:
        """Bytes held."""
        with self._cond:
            return self._bytes

    def put(self, events: list[AuditEvent], stop: threading.Event | None = None) -> None:
        """Durably store a batch (waiting while the outbox is full)."""
        data = b"".join(jsoncodec.dumps(e.to_dict()) + b"\n" for e in events)
        with self._cond:
            while self._bytes and self._bytes + len(data) > self.max_bytes:
                if stop is not None and stop.is_set():
                    raise SinkError(f"outbox {self.dir} is full ({self._bytes} bytes) and the run is stopping")
                self._cond.wait(0.5)
            name = f"{self._next:012d}"
            self._next += 1
        part = self.dir / f"{name}.part"
        try:
            create_synced(part, data)
            os.replace(part, self.dir / f"{name}{SUFFIX}")
            fsync_dir(self.dir)
        except OSError as exc:
            raise SinkError(f"outbox {self.dir}: cannot write a segment: {exc.strerror}") from None
        with self._cond:
            self._bytes += len(data)
            self._cond.notify_all()

    def load(self, segment: Path) -> list[AuditEvent]:
        """The events of one segment."""
        with segment.open("rb") as fh:
            return [AuditEvent.from_dict(jsoncodec.loads(line)) for line in fh if line.strip()]

    def done(self, segment: Path) -> None:
        """Forget a delivered segment."""
        size = segment.stat().st_size
        segment.unlink()
        with self._cond:
            self._bytes -= size
            self._cond.notify_all()

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until a segment arrives (or ``timeout``)."""
        with self._cond:
            if not self.segments():
                self._cond.wait(timeout)
