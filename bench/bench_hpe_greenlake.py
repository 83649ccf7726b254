"""HPE GreenLake: normalize speed, and a full pass over a window far above the 10,000 cap.

Prints records/s for normalize alone (v1 and v2beta1), then for a whole pass of
each version against the simulator into a sink that keeps nothing, with the
number of API requests the cap bisection needed and what that many requests
cost at HPE's real quota (100/min per client). The simulator's records are
generated before timing (and rate limits are off), so the figures are the
forwarder's and the simulator's serving, not the data generator's.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from bench import timed_pass
from forwarder.config import parse_config
from forwarder.simulators.hpe_greenlake import SERVICES, GreenLakeSimulator
from forwarder.sources.hpe_greenlake import GreenLakeSource
from forwarder.state import MemoryStore, SqliteStore
from forwarder.timeutil import UTC

SECRET_ENV = "FORWARDER_BENCH_GL_SECRET"
RECORDS = 60_000
START = dt.datetime(2026, 1, 1, tzinfo=UTC)
END = START + dt.timedelta(hours=2)
FIRST_FIVE = "serviceOffer/id in (" + ", ".join(f"'{s.id}'" for s in SERVICES[:5]) + ")"


def source(sim: GreenLakeSimulator, client, store, work: Path, version: str) -> GreenLakeSource:
    os.environ[SECRET_ENV] = client.secret
    table = {
        "name": f"gl-{version}", "type": "hpe_greenlake", "base_url": sim.url, "workspace_id": client.workspace.id,
        "client_id": client.id, "client_secret": f"env:{SECRET_ENV}", "api_version": version, "window": "2h",
        "rate_limit": 1e9, "rate_limit_overall": 1e9,
    }
    if version == "v2beta1":
        table["filters"] = {"serviceOffer/id": [s.id for s in SERVICES]}
    return GreenLakeSource(parse_config({"source": [table]}).sources[0], store, work)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, GreenLakeSimulator(seed=1, per_hour=0, rate_limit=None, rate_overall=None) as sim:
        work = Path(tmp)
        ws = next(iter(sim.workspaces.values()))
        client = sim.add_client(ws.id)
        sim.add_records(ws.id, START, END, RECORDS)
        for version in ("v1", "v2beta1"):
            records = sim.records(ws.id, version, START, END, FIRST_FIVE if version == "v2beta1" else None)
            src = source(sim, client, MemoryStore(), work, version)
            began = time.perf_counter()
            for record in records:
                src.normalize(record)
            seconds = time.perf_counter() - began
            print(f"normalize {version}: {len(records)} records in {seconds:.2f} s = {len(records) / seconds:,.0f} records/s")
        for version in ("v1", "v2beta1"):
            store = SqliteStore(work / f"state-{version}")
            calls = len(sim.calls)
            count, result, seconds = timed_pass(source(sim, client, store, work, version), store, work, START, END)
            store.close()
            requests = len(sim.calls) - calls
            print(
                f"pass {version}: {count} records ({RECORDS} in 2 h, cap 10,000) in {seconds:.2f} s = "
                f"{count / seconds:,.0f} records/s; {requests} API requests, {result.pages} pages "
                f"(at HPE's 100 requests/min: {requests * 0.6:.0f} s of quota)"
            )
