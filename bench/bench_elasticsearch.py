"""Events/s through the Elasticsearch sink into the strict test server, beside the orjson floor.

The server runs in its own process (on the other core when there are two) and
checks every document against the installed template, so its Python parsing
does not count against the sink; the sink runs here, pinned to one core. The
"per sink CPU-second" figure is the sink's own cost (events / CPU seconds of
this process), the wall figure is bounded by the server. Floors: ``orjson`` on
ready ECS documents, then ``to_ecs`` + ``orjson``, then the sink's full NDJSON
encode (action line + document). ``response_handling`` prints the cost per document
of reading bulk responses (the client's JSON parsing plus the sink's item check),
for an all-created response and for ones with a failure-store item or 409s.

Run: ``.venv/bin/python -m bench elasticsearch`` (``BENCH_ES_EVENTS`` sets the count).
"""

from __future__ import annotations

import os
import time

import requests

from bench.sinkbench import machine_line, make_events, pin_to_first_core, rate, start_server, timed_sends
from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.ecs import to_ecs
from forwarder.event import AuditEvent
from forwarder.sinks.elasticsearch import ElasticsearchSink, setup

BATCH = 5000


def floors(events: list[AuditEvent], sink: ElasticsearchSink) -> None:
    """In-process costs without HTTP (CPU seconds of this process)."""
    dumps = jsoncodec.dumps
    docs = [to_ecs(e, "default") for e in events]
    t = time.process_time()
    blobs = [dumps(d) for d in docs]
    t1 = time.process_time() - t
    t = time.process_time()
    for e in events:
        dumps(to_ecs(e, "default"))
    t2 = time.process_time() - t
    t = time.process_time()
    for i in range(0, len(events), BATCH):
        sink.encode(events[i:i + BATCH])
    t3 = time.process_time() - t
    size = sum(map(len, blobs)) / len(blobs)
    print(f"  floor orjson(ECS document)             {rate(len(events), t1)} per CPU-second  ({size:.0f} B/document)")
    print(f"  to_ecs + orjson                        {rate(len(events), t2)} per CPU-second")
    print(f"  sink NDJSON encode (action + document) {rate(len(events), t3)} per CPU-second")


def _response(n: int, odd: dict[int, dict[str, object]]) -> bytes:
    """A bulk response as Elasticsearch sends it under the sink's ``filter_path``; ``odd`` replaces some items."""
    items = [{"create": odd.get(i, {"status": 201})} for i in range(n)]
    errors = any(r["status"] >= 300 for r in odd.values())  # type: ignore[operator]
    return jsoncodec.dumps({"errors": errors, "items": items})


def response_handling(events: list[AuditEvent], sink: ElasticsearchSink) -> None:
    """Microseconds per document to read a 5,000-item bulk response: parse (the client's serializer) and sort."""
    from elasticsearch.serializer import OrjsonSerializer

    loads = OrjsonSerializer().loads
    sent = [(e, b"") for e in events[:BATCH]]
    error = {"type": "version_conflict_engine_exception", "reason": "[x]: version conflict, document already exists"}
    cases = {
        "all created": {},
        "one in the failure store": {BATCH // 2: {"status": 201, "failure_store": "used"}},
        "1% already there (409)": {i: {"status": 409, "error": error} for i in range(0, BATCH, 100)},
    }
    print(f"  bulk response handling, {BATCH:,} items (us per document, best of 20)")
    for label, odd in cases.items():
        raw = _response(BATCH, odd)
        parse = sort = float("inf")
        for _ in range(20):
            t = time.process_time()
            body = loads(raw)
            t2 = time.process_time()
            retry, _ = sink._sort_items(sent, body, [])
            t3 = time.process_time()
            parse, sort = min(parse, t2 - t), min(sort, t3 - t2)
        assert not retry
        per = 1e6 / BATCH
        print(f"    {label:<26} parse {parse * per:6.3f}  sort {sort * per:6.3f}  total {(parse + sort) * per:6.3f}  ({len(raw) / BATCH:.0f} B/item)")


def through_sink(events: list[AuditEvent], *, compress: bool, mode: str) -> None:
    proc, url = start_server("tests.servers.elasticsearch", "--no-record")
    try:
        config = parse_config({"sink": [{"name": "bench", "type": "elasticsearch", "hosts": [url],
                                         "compress": compress, "index_mode": mode}]})
        setup(config)
        sink = ElasticsearchSink(config.sinks[0])
        wall, cpu, rejected = timed_sends(sink, events, BATCH)
        stored = requests.get(f"{url}/logs-forwarder_*-*,forwarder-*/_count", timeout=30).json()["count"]
        sink.close()
        ok = "all stored" if stored == len(events) and not rejected else f"MISMATCH: server stored {stored}, {rejected} rejected"
        label = f"sink {mode:<11} gzip {'on ' if compress else 'off'}"
        print(f"  {label:<39}{rate(len(events), wall)} wall, {rate(len(events), cpu)} per sink CPU-second  ({ok})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    n = int(os.environ.get("BENCH_ES_EVENTS", "100000"))
    pin_to_first_core()  # the sink on one core, the server on the other
    events = make_events(n)
    print(machine_line(n, BATCH))
    probe = ElasticsearchSink(parse_config({"sink": [{"name": "p", "type": "elasticsearch", "hosts": ["http://127.0.0.1:9"]}]}).sinks[0])
    floors(events, probe)
    response_handling(events, probe)
    probe.close()
    through_sink(events, compress=False, mode="data_stream")
    through_sink(events, compress=True, mode="data_stream")
    through_sink(events, compress=False, mode="daily")


if __name__ == "__main__":
    main()
