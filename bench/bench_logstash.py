"""Events/s through the Logstash sink into the strict http-input stub, and the gzip level choice.

The stub runs in its own process (pinned to the other core when there are two)
and decodes every NDJSON line like the json_lines codec, so its parsing does
not count against the sink. Each figure sends the same events in batches of
5,000 (the pipeline's default ``batch_events``) and checks that the stub
accepted every one. Beside them, the floors: the ECS mapping + JSON encode
alone, then with gzip at the levels worth considering (the sink uses level 1).

Run: ``.venv/bin/python -m bench logstash`` (``BENCH_LOGSTASH_EVENTS`` sets the count).
"""

from __future__ import annotations

import gzip
import os
import time

from bench.sinkbench import machine_line, make_events, pin_to_first_core, rate, start_server, timed_sends
from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.ecs import to_ecs
from forwarder.event import AuditEvent
from forwarder.sinks.logstash import GZIP_LEVEL, LogstashSink

BATCH = 5000
PASSWORD_ENV = "BENCH_LOGSTASH_PASSWORD"


def floors(events: list[AuditEvent]) -> None:
    t = time.process_time()
    lines = [jsoncodec.dumps(to_ecs(e)) + b"\n" for e in events]
    encode = time.process_time() - t
    size = sum(map(len, lines)) / len(lines)
    print(f"  floor to_ecs + orjson                   {rate(len(events), encode)} per CPU-second  ({size:.0f} B/event)")
    for level in (1, 6):
        t = time.process_time()
        compressed = 0
        for i in range(0, len(lines), BATCH):
            compressed += len(gzip.compress(b"".join(lines[i:i + BATCH]), compresslevel=level, mtime=0))
        seconds = time.process_time() - t
        print(f"  floor encode + gzip level {level}             {rate(len(events), encode + seconds)} per CPU-second  "
              f"(to {compressed / sum(map(len, lines)):.1%} of the bytes)")


def through_sink(events: list[AuditEvent], compress: bool) -> None:
    os.environ[PASSWORD_ENV] = "bench-password"
    proc, url = start_server("tests.servers.logstash", "--user", "bench", "--password-env", PASSWORD_ENV, "--no-record")
    assert proc.stdin is not None and proc.stdout is not None
    try:
        table = {"name": "bench", "type": "logstash", "url": url, "user": "bench", "password": f"env:{PASSWORD_ENV}",
                 "compress": compress}
        sink = LogstashSink(parse_config({"sink": [table]}).sinks[0])
        wall, cpu, rejected = timed_sends(sink, events, BATCH)
        sink.close()
        proc.stdin.write("count\n")
        proc.stdin.flush()
        accepted = int(proc.stdout.readline())
        ok = "all accepted" if accepted == len(events) + 100 and not rejected else f"MISMATCH: stub accepted {accepted}, {rejected} rejected"
        label = f"sink gzip {'level ' + str(GZIP_LEVEL) if compress else 'off'}"
        print(f"  {label:<40}{rate(len(events), wall)} wall, {rate(len(events), cpu)} per sink CPU-second  ({ok})")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def main() -> None:
    n = int(os.environ.get("BENCH_LOGSTASH_EVENTS", "100000"))
    pin_to_first_core()  # the sink on one core, the stub on the other
    events = make_events(n)
    print(machine_line(n, BATCH))
    floors(events)
    for compress in (True, False):
        through_sink(events, compress)


if __name__ == "__main__":
    main()
