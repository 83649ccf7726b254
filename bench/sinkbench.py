"""Scaffolding shared by the sink benchmarks.

A sink benchmark runs the sink in this process, pinned to one core, and the
target's test server in its own process pinned to the other core (when the
machine has two), so the server's parsing does not count against the sink.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

from forwarder.event import Actor, AuditEvent, Endpoint, Target
from forwarder.sinks.base import Sink

ROOT = Path(__file__).resolve().parent.parent


def rate(n: int, seconds: float) -> str:
    """``n`` events in ``seconds`` as a right-aligned rate."""
    return f"{n / seconds:>10,.0f} ev/s"


def two_cores() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def pin_to_first_core() -> None:
    """Keep this process (the sink) on core 0."""
    if two_cores():
        os.sched_setaffinity(0, {0})


def start_server(module: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m module args`` on core 1; its first line of output is its URL."""
    cmd = [sys.executable, "-m", module, *args]
    if two_cores():
        cmd = ["taskset", "-c", "1", *cmd]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def machine_line(n: int, batch: int) -> str:
    """What was measured and how busy the machine was (figures on a shared box vary with load)."""
    t = time.perf_counter()
    sum(range(1_000_000))
    reference = (time.perf_counter() - t) * 1000
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"  {n:,} events, batches of {batch:,}, python {sys.version.split()[0]}; "
            f"machine: sum(range(10**6)) takes {reference:.0f} ms, load average {load:.1f}")


def timed_sends(sink: Sink, events: list[AuditEvent], batch: int) -> tuple[float, float, int]:
    """Warm the connection with 100 events, then send all; wall seconds, CPU seconds, rejected count."""
    sink.send(events[:100])
    rejected = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(events), batch):
        rejected += len(sink.send(events[i:i + batch]))
    return time.perf_counter() - wall, time.process_time() - cpu, rejected


def make_events(n: int) -> list[AuditEvent]:
    """Events shaped like a cloud audit record (about 1 KB of JSON each with the envelope)."""
    start = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    out = []
    for i in range(n):
        raw = {
            "id": f"evt-{i:09d}",
            "time": (start + dt.timedelta(milliseconds=37 * i)).isoformat(),
            "actor": {"id": f"u-{i % 97:04d}", "email": f"user{i % 97}@example.com", "type": "user"},
            "action": ("Create", "Update", "Delete", "Login")[i % 4],
            "target": {"type": "instance", "id": f"i-{i % 1013:08x}", "name": f"web-{i % 1013}"},
            "sourceIp": f"10.{i % 250}.{(i // 250) % 250}.{i % 7 + 1}",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            "result": "success" if i % 9 else "failure",
            "region": "us-east1",
            "project": {"id": f"p-{i % 13:04d}", "name": f"project-{i % 13}"},
        }
        out.append(
            AuditEvent.build(
                vendor="crusoe", product="audit", raw=raw, timestamp=raw["time"], vendor_id=raw["id"],
                tenant_id="org-1", tenant_name="example-labs", action=raw["action"], category="configuration",
                outcome="success" if i % 9 else "failure", actor=Actor(raw["actor"]["id"], None, raw["actor"]["email"], "user"),
                source=Endpoint(raw["sourceIp"]), target=Target("instance", raw["target"]["id"], raw["target"]["name"]),
                region="us-east1", message=f"{raw['action']} instance",
            )
        )
    return out
