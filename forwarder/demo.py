"""``siem-forwarder demo``: every implemented vendor, end to end, on this machine alone.

Starts each registered simulator on 127.0.0.1, points a source at it, runs one
pass into the file sink under ``demo-output/`` and prints a summary. No
credentials (the simulators' demo credentials are set in this process's
environment only), no network beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from forwarder import registry
from forwarder.config import parse_config
from forwarder.pipeline import PassResult
from forwarder.runner import run_once


def run_demo(out: Path, events: int, stream: TextIO) -> list[PassResult]:
    """Run the demo; return one result per vendor."""
    state_dir = out / "state"
    shutil.rmtree(state_dir, ignore_errors=True)
    (out / "events.ndjson").unlink(missing_ok=True)
    with ExitStack() as stack:
        sources: list[dict[str, Any]] = []
        for vendor in sorted(registry.SIMULATORS):
            sim = stack.enter_context(registry.load("simulator", vendor)())
            table, env = sim.demo_source(events)
            os.environ.update(env)
            sources.append(table)
        config = parse_config(
            {
                "state": {"dir": str(state_dir)},
                "source": sources,
                "sink": [{"name": "demo-file", "type": "file", "path": str(out / "events.ndjson")}],
            }
        )
        print(f"demo: {len(sources)} vendor simulators on 127.0.0.1, writing to {out / 'events.ndjson'}", file=stream)
        results = run_once(config)
    width = max([len(r.source) for r in results] + [6])
    print(f"{'source':<{width}}  {'events':>8}  {'dead-lettered':>13}  {'seconds':>7}  status", file=stream)
    for r in results:
        status = "ok" if r.error is None else f"FAILED: {r.error}"
        print(f"{r.source:<{width}}  {r.events:>8}  {r.dead_letters:>13}  {r.seconds:>7.2f}  {status}", file=stream)
    return results
