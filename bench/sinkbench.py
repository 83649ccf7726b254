"""Scaffolding shared by the sink benchmarks.

A sink benchmark runs the sink in this process, pinned to one core, and the
target's test server in its own process pinned to the other core (when the
machine has two), so the server's parsing does not count against the sink.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from forwarder.event import AuditEvent
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
