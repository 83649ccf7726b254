"""A sink that holds every delivery until the test opens its gate (imported by name through the registry)."""

from __future__ import annotations

import threading

from forwarder.sinks.base import Sink

BOUND = 60.0  # seconds any awaited condition may take before a test fails


class GateSink(Sink):
    TYPE = "gate"
    entered = threading.Event()
    gate = threading.Event()
    delivered = 0
    held_from = None  # the earliest event time of the first batch held

    def send(self, events):
        if GateSink.held_from is None:
            GateSink.held_from = min(e.timestamp for e in events)
        GateSink.entered.set()
        GateSink.gate.wait(BOUND)
        GateSink.delivered += len(events)
        return []
