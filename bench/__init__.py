"""Benchmarks (not part of the test suite): `python -m bench [name ...]`."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from forwarder.config import SinkConfig
from forwarder.deadletter import DeadLetters
from forwarder.event import AuditEvent
from forwarder.http import HttpSettings
from forwarder.pipeline import PassResult, Pipeline
from forwarder.sinks.base import Rejected, Sink
from forwarder.sources.base import Source
from forwarder.state import CheckpointStore


def verdict(value: float, goal: float, at_most: bool = False) -> str:
    """``met`` or ``missed by N%`` (how far ``value`` is from ``goal``)."""
    if (value <= goal) if at_most else (value >= goal):
        return "met"
    return f"missed by {abs(value / goal - 1):.0%}"


class NullSink(Sink):
    """A sink that accepts and counts events, so a benchmark measures the source side only."""

    TYPE = "null"

    def __init__(self) -> None:
        super().__init__(SinkConfig("null", "null", 5000, 0.0, HttpSettings()))
        self.count = 0

    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        self.count += len(events)
        return []


def timed_pass(source: Source, store: CheckpointStore, work: Path, start: dt.datetime, end: dt.datetime) -> tuple[int, PassResult, float]:
    """One pipeline pass of ``source`` into a ``NullSink``, then the source closed.

    Returns (events delivered, the pass result, wall seconds of the pass); a failed
    pass ends the benchmark with its error.
    """
    sink = NullSink()
    pipeline = Pipeline([sink], store, DeadLetters(work))
    began = time.perf_counter()
    result = pipeline.run_pass(source, start, end)
    seconds = time.perf_counter() - began
    pipeline.close()
    source.close()
    if result.error:
        raise SystemExit(f"bench pass failed: {result.error}")
    return sink.count, result, seconds
