"""Real events for tests: a vendor source reading its own simulator's demo data."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from forwarder import registry
from forwarder.config import Config, parse_config
from forwarder.event import AuditEvent
from forwarder.pipeline import window_for
from forwarder.simulators.crusoe import CrusoeSimulator
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


@contextmanager
def crusoe_demo(records: int, monkeypatch: pytest.MonkeyPatch, seed: int = 11) -> Iterator[CrusoeSimulator]:
    """A Crusoe simulator serving ``records`` records, its secret in the environment; ``.table`` is its [[source]]."""
    with CrusoeSimulator(seed=seed, records=records) as sim:
        table, env = sim.demo_source(records)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sim.table, sim.env = table, env
        yield sim


def file_config(tmp_path: Path, sources: list[dict[str, Any]], sink_path: Path | None = None, **sink: Any) -> Config:
    """A config reading ``sources`` (8 h back) into the file sink ``out`` (``tmp_path/out.ndjson`` by default)."""
    return parse_config({
        "state": {"dir": str(tmp_path / "state")},
        "source": [{"lookback": "8h", **table} for table in sources],
        "sink": [{"name": "out", "type": "file", "path": str(sink_path or tmp_path / "out.ndjson"), **sink}],
    })
