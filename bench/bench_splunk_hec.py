"""Events/s through the Splunk HEC sink into the strict HEC test server.

The server runs in its own process (pinned to another core when the machine
has two), so its JSON parsing does not count against the sink; the sink runs
in this process, pinned to one core. Each figure sends the same events in
batches of 5,000 (the pipeline's default ``batch_events``) and checks that the
server indexed every one. Beside them, the floors: ``orjson`` on the events'
dicts alone, then the HEC envelope encode, then encode + gzip.

Run: ``.venv/bin/python -m bench splunk_hec`` (``BENCH_HEC_EVENTS`` sets the count).
"""

from __future__ import annotations

import gzip
import os
import time

import requests

from bench.sinkbench import machine_line, make_events, pin_to_first_core, rate, start_server, timed_sends
from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.event import AuditEvent
from forwarder.sinks.splunk_hec import SplunkHecSink
from forwarder.splunk_event import hec_event

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


def floors(events: list[AuditEvent]) -> None:
    """In-process costs without HTTP, in batches like the sink's requests."""
    dumps = jsoncodec.dumps
    batches = [events[i:i + 900] for i in range(0, len(events), 900)]
    t1 = _cpu(lambda: [[dumps(e.to_dict()) for e in b] for b in batches])
    t2 = _cpu(lambda: [[dumps(hec_event(e, index="audit", host="fw01", source="siem-forwarder")) for e in b] for b in batches])
    level = SplunkHecSink.OPTIONS["gzip_level"].default
    t3 = _cpu(lambda: [gzip.compress(b"\n".join([dumps(hec_event(e, index="audit", host="fw01", source="siem-forwarder")) for e in b]), level, mtime=0) for b in batches])
    raw = b"\n".join(dumps(hec_event(e, index="audit", host="fw01", source="siem-forwarder")) for e in batches[0])
    size = len(raw) / len(batches[0])
    ratio = len(gzip.compress(raw, level)) / len(raw)
    print(f"  floor orjson(event.to_dict())          {rate(len(events), t1)} per CPU-second")
    print(f"  floor HEC envelope encode              {rate(len(events), t2)} per CPU-second  ({size:.0f} B/event)")
    print(f"  floor envelope encode + gzip level {level}   {rate(len(events), t3)} per CPU-second  (gzip to {ratio:.0%})")


def through_sink(events: list[AuditEvent], *, ack: bool, gzip_on: bool) -> None:
    proc, url = start_server("tests.servers.hec", "--token", TOKEN, "--no-record", *(["--ack"] if ack else []))
    try:
        os.environ["BENCH_HEC_TOKEN"] = TOKEN
        table = {"name": "bench", "type": "splunk_hec", "url": url, "token": "env:BENCH_HEC_TOKEN",
                 "index": "audit", "host": "fw01", "source": "siem-forwarder", "gzip": gzip_on, "ack": ack}
        sink = SplunkHecSink(parse_config({"sink": [table]}).sinks[0])
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
    for ack in (False, True):
        for gzip_on in (False, True):
            through_sink(events, ack=ack, gzip_on=gzip_on)


if __name__ == "__main__":
    main()
