"""Events/s through the Splunk HEC sink into the strict HEC test server.

The server runs in its own process (pinned to another core when the machine
has two), so its JSON parsing does not count against the sink; the sink runs
in this process, pinned to one core. Each figure sends the same events in
batches of 5,000 (the pipeline's default ``batch_events``) and checks that the
server indexed every one. Beside them, the floors: ``orjson`` on the events'
dicts alone, the envelope as a dict dumped whole (what the sink did before issue
17), the sink's own encode, then encode + gzip. ``gzip_levels`` prints what each
gzip level costs and saves on real request bodies (the Crusoe simulator's events).

Run: ``.venv/bin/python -m bench splunk_hec`` (``BENCH_HEC_EVENTS`` sets the count;
``BENCH_HEC_GZIP_EVENTS`` the Crusoe events of the gzip table).
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import tempfile
import time
from pathlib import Path

import requests

from bench.sinkbench import machine_line, make_events, pin_to_first_core, rate, start_server, timed_sends
from forwarder import compression, jsoncodec
from forwarder.config import parse_config
from forwarder.event import AuditEvent
from forwarder.sinks.splunk_hec import SplunkHecSink
from forwarder.simulators.crusoe import CrusoeSimulator
from forwarder.splunk_event import hec_event
from forwarder.timeutil import UTC

TOKEN = "b3c1f9e2-7a45-4d88-9e10-5c6b7a8d9e0f"
BATCH = 5000


def _cpu(work) -> float:
    """Best of three CPU-second timings of ``work()`` (the machine is shared; the best run is the cost)."""
    runs = []
    for _ in range(3):
        t = time.process_time()
        work()
        runs.append(time.process_time() - t)
    return min(runs)


def _sink(url: str = "https://127.0.0.1:8088", **options: object) -> SplunkHecSink:
    os.environ["BENCH_HEC_TOKEN"] = TOKEN
    table = {"name": "bench", "type": "splunk_hec", "url": url, "token": "env:BENCH_HEC_TOKEN",
             "index": "audit", "host": "fw01", "source": "siem-forwarder", **options}
    return SplunkHecSink(parse_config({"sink": [table]}).sinks[0])


def floors(events: list[AuditEvent]) -> None:
    """In-process costs without HTTP, in batches like the sink's requests."""
    dumps = jsoncodec.dumps
    sink = _sink()
    batches = [events[i:i + 900] for i in range(0, len(events), 900)]
    t1 = _cpu(lambda: [[dumps(e.to_dict()) for e in b] for b in batches])
    t2 = _cpu(lambda: [[dumps(hec_event(e, index="audit", host="fw01", source="siem-forwarder")) for e in b] for b in batches])
    t3 = _cpu(lambda: [sink.encode(b) for b in batches])
    level = SplunkHecSink.OPTIONS["gzip_level"].default
    t4 = _cpu(lambda: [gzip.compress(b"\n".join(sink.encode(b)), level, mtime=0) for b in batches])
    raw = b"\n".join(sink.encode(batches[0]))
    sink.close()
    size = len(raw) / len(batches[0])
    ratio = len(gzip.compress(raw, level)) / len(raw)
    print(f"  floor orjson(event.to_dict())          {rate(len(events), t1)} per CPU-second")
    print(f"  dumps(hec_event(...)) (the old encode) {rate(len(events), t2)} per CPU-second")
    print(f"  floor sink HEC encode                  {rate(len(events), t3)} per CPU-second  ({size:.0f} B/event)")
    print(f"  floor sink encode + gzip level {level}       {rate(len(events), t4)} per CPU-second  (gzip to {ratio:.0%})")


def crusoe_bodies(count: int) -> tuple[int, list[bytes]]:
    """The Crusoe simulator's first ``count`` records, normalized and encoded by the sink, cut into its requests."""
    from bench.bench_crusoe import SECRET_ENV, make_source

    end = dt.datetime(2025, 3, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp, CrusoeSimulator(records=count, end=end, seed=1) as sim:
        os.environ[SECRET_ENV] = sim.secret_key
        source = make_source(sim, Path(tmp))
        events = [source.normalize(sim.record(i)) for i in range(count)]
        source.close()
    sink = _sink()
    bodies = [b"\n".join(lines) for _, lines in sink._chunks(events)]
    sink.close()
    return len(events), bodies


def gzip_levels(count: int | None = None) -> None:
    """CPU per event and bytes saved by gzip levels on real HEC request bodies (``batch_bytes`` = 900 KB),
    with zlib and with ISA-L (the sink's coder when ``isal`` is installed; levels on zlib's scale).

    The level is chosen by CPU per byte saved: a byte not sent costs the sink CPU
    now and saves network, Splunk's decompression and the indexer's queue later.
    """
    n = count or int(os.environ.get("BENCH_HEC_GZIP_EVENTS", "20000"))
    n, bodies = crusoe_bodies(n)
    raw = sum(map(len, bodies))
    print(f"  gzip on {len(bodies)} requests of the sink ({n:,} Crusoe simulator events, {raw / n:.0f} B/event, "
          f"{raw / len(bodies) / 1000:.0f} KB/request); CPU best of 3")
    print("    coder  level   CPU us/event   bytes/event   saved/event   ratio   ns CPU per byte saved   vs level 1: extra ns per extra byte saved")
    coders = [("zlib", lambda b, level: gzip.compress(b, level, mtime=0))]
    if compression._isal is not None:
        coders.append(("ISA-L", compression.gzip))  # what the sink uses when isal is installed
    for name, compress in coders:
        base: tuple[float, float] | None = None
        for level in (1, 2, 3, 6):
            cpu = _cpu(lambda level=level: [compress(b, level) for b in bodies])
            out = sum(len(compress(b, level)) for b in bodies)
            us, saved = cpu / n * 1e6, (raw - out) / n
            per_byte = us * 1000 / saved
            if base is None:
                base, marginal = (us, saved), "-"
            else:
                extra = saved - base[1]
                marginal = f"{(us - base[0]) * 1000 / extra:.1f}" if extra > 0 else "no saving"
            print(f"    {name:<6} {level:>5} {us:>14.2f} {out / n:>13.1f} {saved:>13.1f} {out / raw:>7.1%} {per_byte:>23.2f}   {marginal}")


def through_sink(events: list[AuditEvent], *, ack: bool, gzip_on: bool) -> None:
    proc, url = start_server("tests.servers.hec", "--token", TOKEN, "--no-record", *(["--ack"] if ack else []))
    try:
        sink = _sink(url, gzip=gzip_on, ack=ack)
        wall, cpu, rejected = timed_sends(sink, events, BATCH)
        indexed = requests.get(url + "/_test/count", timeout=10).json()["indexed"]
        sink.close()
        ok = "all indexed" if indexed == len(events) + 100 and not rejected else f"MISMATCH: server indexed {indexed}"
        label = f"sink acks {'on ' if ack else 'off'} gzip {'on ' if gzip_on else 'off'}"
        print(f"  {label:<39}{rate(len(events), wall)} wall, {rate(len(events), cpu)} per sink CPU-second  ({ok})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    n = int(os.environ.get("BENCH_HEC_EVENTS", "100000"))
    pin_to_first_core()
    events = make_events(n)
    print(machine_line(n, BATCH))
    floors(events)
    gzip_levels()
    for ack in (False, True):
        for gzip_on in (False, True):
            through_sink(events, ack=ack, gzip_on=gzip_on)


if __name__ == "__main__":
    main()
