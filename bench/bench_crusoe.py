"""Crusoe Cloud: simulator data rate, normalize speed, and a whole signed, paged pass.

Prints records/s for the simulator's on-demand record generation, for
``normalize`` alone (records generated before timing), and for a full pass of
``CRUSOE_BENCH_RECORDS`` records (default 200,000) over six hours of data:
signed requests, paging, window-edge dedup and normalization into a sink that
keeps nothing. The pass shares this process (and its GIL) with the simulator,
so it is a lower bound for a forwarder talking to the real API.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from bench import timed_pass
from forwarder.config import parse_config
from forwarder.simulators.crusoe import CrusoeSimulator
from forwarder.sources.crusoe import CrusoeSource
from forwarder.state import MemoryStore
from forwarder.timeutil import UTC

SECRET_ENV = "FORWARDER_BENCH_CRUSOE_SECRET"
RECORDS = int(os.environ.get("CRUSOE_BENCH_RECORDS", "200000"))
SPAN = 6 * 3600.0


def make_source(sim: CrusoeSimulator, work: Path, **options) -> CrusoeSource:
    table = {"name": "crusoe", "type": "crusoe", "base_url": sim.url, "organization_id": sim.org_id,
             "access_key_id": sim.access_key_id, "secret_key": f"env:{SECRET_ENV}", **options}
    return CrusoeSource(parse_config({"source": [table]}).sources[0], MemoryStore(), work)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} records/s ({count:,} in {seconds:.2f} s)"


def main() -> None:
    now = dt.datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp, CrusoeSimulator(records=RECORDS, span=SPAN, end=now - dt.timedelta(minutes=5), seed=1) as sim:
        os.environ[SECRET_ENV] = sim.secret_key
        work = Path(tmp)
        sample = min(RECORDS, 50_000)

        began = time.perf_counter()
        records = [sim.record(i) for i in range(sample)]
        print(f"simulator generate: {rate(sample, time.perf_counter() - began)}")

        src = make_source(sim, work)
        began = time.perf_counter()
        for record in records:
            src.normalize(record)
        print(f"normalize:          {rate(sample, time.perf_counter() - began)}")
        src.close()
        del records

        src = make_source(sim, work, limit=1000, window="1h")
        requests_before = sim.requests
        count, _, seconds = timed_pass(src, MemoryStore(), work, sim.end - dt.timedelta(seconds=SPAN + 60), sim.end + dt.timedelta(seconds=1))
        if count != RECORDS:
            raise SystemExit(f"bench pass failed: {count} of {RECORDS} events")
        print(f"full pass (limit 1000, 1h windows): {rate(count, seconds)}, "
              f"{sim.requests - requests_before} signed requests")
