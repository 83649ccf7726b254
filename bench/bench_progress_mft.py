"""Progress Automate MFT: report parsing speed and memory, and a whole pass against the simulator.

Prints rows/s for streaming a JSON and a CSV report file (parse only, then parse +
normalize), the peak Python memory while streaming next to the file size, and
rows/s of a full pass (token, create, poll, download, parse, normalize, deliver,
delete) into a sink that keeps nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import timed_pass
from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.simulators.progress_mft import ProgressMftSimulator, _Report
from forwarder.sources.progress_mft import ProgressMftSource
from forwarder.state import MemoryStore, SqliteStore

UTC = dt.timezone.utc
START = dt.datetime(2026, 6, 26, tzinfo=UTC)


def source_for(sim: ProgressMftSimulator, tmp: Path, store, **options) -> ProgressMftSource:
    kid, pem = sim.new_client("bench-tenant")
    (tmp / "key.pem").write_text(pem)
    table = {"name": "mft", "type": "progress_mft", "base_url": sim.url, "tenant_id": "bench-tenant",
             "key_id": kid, "private_key": f"file:{tmp / 'key.pem'}", "poll_interval": 0.01, **options}
    return ProgressMftSource(parse_config({"source": [table]}).sources[0], store, tmp / "work")


def parse_figures(sim: ProgressMftSimulator, tmp: Path, rows: int) -> None:
    hours = 4
    sim.events_per_hour = rows // hours
    source = source_for(sim, tmp, MemoryStore())
    for fmt, type_ in (("json", 0), ("csv", 1)):
        report = _Report("bench", "bench-tenant", type_, START, START + dt.timedelta(hours=hours), {})
        path = tmp / f"report.{fmt}"
        path.write_bytes(sim.render(report))
        size = path.stat().st_size

        def rows_of(fh):
            return csv.DictReader(fh) if fmt == "csv" else jsoncodec.iter_values(fh, envelope="items")

        with path.open(encoding="utf-8-sig", newline="") as fh:
            began = time.perf_counter()
            n = sum(1 for _ in rows_of(fh))
            parse = time.perf_counter() - began
        with path.open(encoding="utf-8-sig", newline="") as fh:
            began = time.perf_counter()
            for row in rows_of(fh):
                source.normalize(row)
            both = time.perf_counter() - began
        with path.open(encoding="utf-8-sig", newline="") as fh:
            tracemalloc.start()
            for _ in rows_of(fh):
                pass
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        print(f"{fmt:4} report {n} rows, {size / 1e6:.1f} MB: parse {n / parse:,.0f} rows/s ({size / parse / 1e6:.1f} MB/s); "
              f"parse+normalize {n / both:,.0f} rows/s; peak memory while streaming {peak / 1e3:.0f} kB")
    source.close()


def pass_figures(tmp: Path, rows: int) -> None:
    for fmt in ("json", "csv"):
        with ProgressMftSimulator(events_per_hour=rows // 4) as sim:
            store = SqliteStore(tmp / f"state-{fmt}")
            source = source_for(sim, tmp, store, report_format=fmt)
            count, _, took = timed_pass(source, store, tmp / "dl", START, START + dt.timedelta(hours=4))
            store.close()
            print(f"{fmt:4} full pass, 4 one-hour reports, {count} rows: {took:.2f} s, {count / took:,.0f} rows/s "
                  f"({sim.requests} HTTP requests)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ProgressMftSimulator() as sim:
        parse_figures(sim, Path(tmp), 200_000)
    with tempfile.TemporaryDirectory() as tmp:
        pass_figures(Path(tmp), 100_000)
