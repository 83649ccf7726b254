"""Carbon Black Cloud: normalize speed, export-file streaming, and whole passes per mode.

Prints records/s for normalize alone, for streaming an export file (with peak
Python memory next to the file size), and for a full pass of each mode against
the simulator into a sink that keeps nothing: search (paged windows), export
(job, poll, download, parse) and queue (every body fsynced to the spool first).
The simulator's records are generated before timing, so the figures are the
forwarder's, not the data generator's.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import timed_pass
from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.simulators.carbon_black_cloud import DEMO_API_ID, DEMO_SECRET, CarbonBlackCloudSimulator
from forwarder.sources.carbon_black_cloud import CarbonBlackCloudSource, iter_json_records
from forwarder.state import MemoryStore, SqliteStore
from forwarder.timeutil import UTC

SECRET_ENV = "FORWARDER_BENCH_CBC_SECRET"
RECORDS = 50_000
SPACING = 1.0  # one record a second: RECORDS seconds of data
END = dt.datetime(2026, 1, 2, tzinfo=UTC)
START = END - dt.timedelta(seconds=RECORDS * SPACING)


def source(sim: CarbonBlackCloudSimulator, work: Path, store, **options) -> CarbonBlackCloudSource:
    table = {"name": "cbc", "type": "carbon_black_cloud", "base_url": sim.url, "org_key": sim.org_key,
             "api_id": DEMO_API_ID, "api_secret": f"env:{SECRET_ENV}", "rate_limit": 1e9, "poll_interval": 0.01,
             "page_size": 5000, "window": "1d", **options}
    return CarbonBlackCloudSource(parse_config({"source": [table]}).sources[0], store, work)


def main() -> None:
    os.environ[SECRET_ENV] = DEMO_SECRET
    with tempfile.TemporaryDirectory() as tmp, CarbonBlackCloudSimulator(
        seed=1, spacing=SPACING, retention=10 * 365 * 86400.0, queue_batch=5000
    ) as sim:
        work = Path(tmp)
        records = sim.records_between(START, END)  # generate once, outside every timing
        print(f"data: {len(records)} records ({RECORDS * SPACING / 3600:.1f} h at one per {SPACING:g} s)")

        src = source(sim, work / "n", MemoryStore())
        began = time.perf_counter()
        for record in records:
            src.normalize(record)
        print(f"normalize: {len(records) / (time.perf_counter() - began):,.0f} records/s")

        path = work / "export.json"
        path.write_bytes(b"[\n" + b",\n".join(jsoncodec.dumps(r) for r in records) + b"\n]\n")
        began = time.perf_counter()
        count = sum(1 for _ in iter_json_records(path))
        seconds = time.perf_counter() - began
        tracemalloc.start()  # a second read: tracing memory slows Python down too much to time it
        sum(1 for _ in iter_json_records(path))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"export file streaming: {count / seconds:,.0f} records/s, file {path.stat().st_size / 1e6:.1f} MB, "
              f"peak Python memory {peak / 1e6:.2f} MB")

        for mode in ("search", "export"):
            count, _, seconds = timed_pass(source(sim, work / mode, MemoryStore(), mode=mode), SqliteStore(work / mode / "state"),
                                           work / mode, START, END)
            print(f"{mode} pass (page_size 5000): {count} events in {seconds:.2f} s = {count / seconds:,.0f} events/s")

    queue_spacing = 3 * 86400 / RECORDS  # a new key's queue holds the last three days: RECORDS records
    with tempfile.TemporaryDirectory() as tmp, CarbonBlackCloudSimulator(seed=1, spacing=queue_spacing, queue_batch=5000) as sim:
        sim.records_between(sim.now() - dt.timedelta(days=3, minutes=1), sim.now())  # generate outside the timing
        count, _, seconds = timed_pass(source(sim, Path(tmp), MemoryStore(), mode="queue"), SqliteStore(Path(tmp) / "state"),
                                       Path(tmp), START, END)
        bodies = -(-count // sim.queue_batch)
        print(f"queue pass (batches of {sim.queue_batch}, {bodies} fsynced spool bodies): "
              f"{count} events in {seconds:.2f} s = {count / seconds:,.0f} events/s")
