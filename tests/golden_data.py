"""Golden outputs of the hot path: what every sink writes for a fixed set of vendor records.

``tests/golden/<vendor>.records.json`` holds records captured once from each vendor's
simulator (``python tests/golden_data.py --capture``) plus odd variants made here
(``ODD``). ``render`` turns them into the bytes the file sink, the HEC sink and the
Elasticsearch sink (data stream and daily index) produce; ``tests/test_golden.py``
compares those byte for byte with ``tests/golden/<vendor>.<output>``. The goldens are
rewritten only on purpose (``python tests/golden_data.py --write``), and the commit says
why the output changed.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forwarder import jsoncodec, registry
from forwarder.config import parse_config
from forwarder.ecs import to_ecs
from forwarder.pipeline import normalize_records
from forwarder.state import MemoryStore

GOLDEN = Path(__file__).parent / "golden"
VENDORS = ("crusoe", "carbon_black_cloud", "hpe_greenlake", "progress_mft")
OUTPUTS = ("ndjson", "hec", "es", "es-daily", "rejected")
#: The ``ingested_at`` of every golden event (the pipeline stamps one per page).
READ_AT = dt.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
DELETE = object()


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


#: Variants of captured records (key → new value, or DELETE): addresses in every spelling,
#: times in every accepted form, unicode, control characters, missing fields, values orjson
#: cannot write (nesting over 254 levels, integers over 64 bits, lone surrogates).
ODD: dict[str, list[dict[str, Any]]] = {
    "crusoe": [
        {"client_ip": "203.0.113.9", "result": "403", "error_message": "Forbidden: \"quota\"\n"},
        {"client_ip": "not-an-ip.example", "actor_email": DELETE, "start_time": "2026-12-02T23:58:27.123456789+05:30"},
        {"client_ip": "[::1]:8080", "target_ids": ["a", "b"], "target_names": ["Zoë ✓", "名前"], "locations": ["eu-1", "us-2"]},
        {"start_time": 1764720000123, "end_time": "2026-12-02 23:58:27", "surface": "", "action_detail": "Resize"},
        {"action": "Login", "target_type": "User", "result": "FAILED", "actor_type": DELETE, "extra": _deep(300)},
        {"action": "Delete", "target_type": "Firewall\u2028Rule", "project_name": "p\ud800", "big": 2**70},
        {"action": DELETE},
        {"start_time": "yesterday"},
    ],
    "carbon_black_cloud": [
        {"actor_ip": "2001:db8::7", "flagged": True, "verbose": True, "description": "Löschen \"x\"\t✓"},
        {"actor_ip": "[2001:db8::7]:443", "create_time": 1764720000123},
        {"actor_ip": "not an address", "actor": DELETE, "request_url": DELETE},
        {"description": "Logged in successfully", "flagged": "yes", "extra": _deep(300), "big": -(2**80)},
        {"create_time": DELETE},
    ],
    "hpe_greenlake": [
        {"description": "User logged out\r\n\u0000", "region": DELETE, "user": {}},
        {"additionalInfo": {"ipAddress": "[fe80::1]:22", "nested": _deep(300), "n": 2**65}},
        {"category": "User Management", "description": "Role 'Admin' assigned to zoë@example.com"},
        {"createdAt": "2026-12-03T05:52:32.5+01:00", "workspace": {"id": "w", "workspaceName": "ワーク"}},
        {"createdAt": "not a time"},
    ],
    "progress_mft": [
        {"outcome": "Failure", "sourceIp": "[::1]:8080", "message": DELETE},
        {"sourceIp": "10.0.0.1:5000", "resourceName": "Zoë \ud83d\ude00", "timestamp": "2026-12-03T00:07:42Z"},
        {"action": "Login", "resource": "User", "actorType": DELETE, "sourceIp": "host.example", "x": _deep(300)},
        {"timestamp": "2026-12-03T00:07:42.1+02:00", "actor": "", "outcome": "Unknown", "big": 2**64},
        {"timestamp": None},
    ],
}


def records(vendor: str) -> list[Any]:
    """The captured records of ``vendor`` followed by its odd variants."""
    captured = jsoncodec.loads((GOLDEN / f"{vendor}.records.json").read_bytes())["records"]
    odd = []
    for i, change in enumerate(ODD[vendor]):
        record = dict(captured[i % len(captured)])
        for key, value in change.items():
            if value is DELETE:
                record.pop(key, None)
            else:
                record[key] = value
        odd.append(record)
    return captured + odd


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def events(vendor: str, work_dir: Path) -> tuple[list[Any], list[tuple[str, Any]]]:
    """The normalized events of ``vendor``'s golden records, and the records it rejected."""
    table = jsoncodec.loads((GOLDEN / f"{vendor}.records.json").read_bytes())["table"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in table.items():
            if isinstance(value, str) and value.startswith("env:"):
                mp.setenv(value[4:], _pem() if vendor == "progress_mft" else "Z29sZGVuLXNlY3JldC1rZXk")
        cfg = parse_config({"source": [table]}).sources[0]
        source = registry.load("source", cfg.type)(cfg, MemoryStore(), work_dir)
    try:
        found, bad = normalize_records(source, records(vendor))
    finally:
        source.close()
    for event in found:
        event.ingested_at = READ_AT
    return found, bad


def _sink(kind: str, **options: Any) -> Any:
    table = {"name": "golden", "type": kind, **options}
    cfg = parse_config({"sink": [table]}).sinks[0]
    return registry.load("sink", kind)(cfg)


def render(vendor: str, work_dir: Path) -> dict[str, bytes]:
    """Every golden output of ``vendor``: file sink NDJSON, HEC lines, Elasticsearch bulk bodies."""
    found, bad = events(vendor, work_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOLDEN_TOKEN", "golden-token")
        hec = _sink("splunk_hec", url=["https://127.0.0.1:8088"], token="env:GOLDEN_TOKEN", index="audit", host="fwd-1", source="siem-forwarder")
        es = _sink("elasticsearch", hosts=["https://127.0.0.1:9200"])
        daily = _sink("elasticsearch", hosts=["https://127.0.0.1:9200"], index_mode="daily", namespace="prod")
    try:
        file_lines = work_dir / "out.ndjson"
        out = _sink("file", path=str(file_lines))
        out.send(found)
        out.close()
        return {
            "ndjson": file_lines.read_bytes(),
            "hec": b"".join(line + b"\n" for line in hec.encode(found)),
            "es": b"".join(es.encode(found)),
            "es-daily": b"".join(daily.encode(found)),
            "rejected": b"".join(jsoncodec.dumps(reason) + b"\n" for reason, _ in bad),
        }
    finally:
        for sink in (hec, es, daily):
            sink.close()


def _capture() -> None:
    """Record each simulator's demo records once (their times are fixed from then on)."""
    from forwarder.pipeline import window_for
    from forwarder.timeutil import now

    for vendor in VENDORS:
        with registry.load("simulator", vendor)(seed=11) as sim, pytest.MonkeyPatch.context() as mp:
            table, env = sim.demo_source(40)
            for key, value in env.items():
                mp.setenv(key, value)
            cfg = parse_config({"source": [table]}).sources[0]
            source = registry.load("source", cfg.type)(cfg, MemoryStore(), Path(tempfile.mkdtemp()))
            start, end = window_for(cfg, now())
            captured = [r for page in source.fetch(None, start, end) for r in page.records]
            source.close()
        (GOLDEN / f"{vendor}.records.json").write_bytes(jsoncodec.dumps({"table": table, "records": captured}))


def _write() -> None:
    for vendor in VENDORS:
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in render(vendor, Path(tmp)).items():
                (GOLDEN / f"{vendor}.{name}").write_bytes(data)


if __name__ == "__main__":
    {"--capture": _capture, "--write": _write}[sys.argv[1]]()
