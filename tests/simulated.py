"""Real events for tests: a vendor source reading its own simulator's demo data."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder import registry
from forwarder.config import parse_config
from forwarder.event import AuditEvent
from forwarder.pipeline import window_for
from forwarder.state import MemoryStore
from forwarder.timeutil import now


def simulated_events(vendor: str, count: int, work_dir: Path, seed: int = 11) -> list[AuditEvent]:
    """About ``count`` normalized events of ``vendor``, read by its source through one default window."""
    with registry.load("simulator", vendor)(seed=seed) as sim, pytest.MonkeyPatch.context() as mp:
        table, env = sim.demo_source(count)
        for key, value in env.items():
            mp.setenv(key, value)
        cfg = parse_config({"source": [table]}).sources[0]
        source = registry.load("source", cfg.type)(cfg, MemoryStore(), work_dir)
        start, end = window_for(cfg, now())
        try:
            return [source.normalize(record) for page in source.fetch(None, start, end) for record in page.records]
        finally:
            source.close()
