"""Benchmarks (not part of the test suite): `python -m bench [name ...]`."""

from __future__ import annotations

from forwarder.config import SinkConfig
from forwarder.event import AuditEvent
from forwarder.http import HttpSettings
from forwarder.sinks.base import Rejected, Sink


class NullSink(Sink):
    """A sink that accepts and counts events, so a benchmark measures the source side only."""

    TYPE = "null"

    def __init__(self) -> None:
        super().__init__(SinkConfig("null", "null", 5000, 0.0, HttpSettings()))
        self.count = 0

    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        self.count += len(events)
        return []
