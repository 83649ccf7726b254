"""No single record can stop a source: every source's fetch + normalize and every sink's
encoder take arbitrary JSON values in every field. A record ends as an event or as a
dead letter with its reason; nothing else escapes, and the cursor moves past it."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings, strategies as st

from forwarder import jsoncodec
from forwarder.config import SinkConfig, parse_config
from forwarder.deadletter import DeadLetters
from forwarder.ecs import to_ecs
from forwarder.export import ExportWriter
from forwarder.http import HttpSettings
from forwarder.logs import setup_logging
from forwarder.outbox import Outbox
from forwarder.pipeline import normalize_records
from forwarder.registry import load
from forwarder.sinks.file import FileSink
from forwarder.splunk_event import hec_event
from forwarder.state import MemoryStore
from forwarder.timeutil import now
from tests.hostile import PageServer, json_values, nested, recent_times, records

END = now().replace(microsecond=0) - dt.timedelta(minutes=5)
START = END - dt.timedelta(minutes=30)
TIMES = recent_times(START, END)
TEXT = st.text(max_size=10)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FAST_HTTP = {"backoff_base": 0.01, "backoff_max": 0.02, "retries": 1}


@pytest.fixture(scope="module", autouse=True)
def secrets():
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HOSTILE_CBC_SECRET", "HOSTILE_GL_SECRET"):
            mp.setenv(name, "secret")
        mp.setenv("HOSTILE_CRUSOE_SECRET", "c2VjcmV0LXNlY3JldC1zZWNyZXQ")
        yield


@pytest.fixture(scope="module")
def server():
    with PageServer() as s:
        yield s


@pytest.fixture(scope="module")
def mft_key(tmp_path_factory):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = tmp_path_factory.mktemp("mft") / "key.pem"
    path.write_bytes(pem)
    return path


def build(table, tmp_path):
    """The source of ``table``, working in a directory of its own (hypothesis reuses ``tmp_path``)."""
    cfg = parse_config({"source": [{"name": "src", "http": FAST_HTTP, **table}]}).sources[0]
    return load("source", cfg.type)(cfg, MemoryStore(), tempfile.mkdtemp(dir=tmp_path))


def deliver_everywhere(source, tmp_path):
    """One pass through fetch, normalize, the dead-letter file and every encoder; (events, dead letters, last cursor)."""
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))
    dead = DeadLetters(tmp_path / "dl")
    file_sink = FileSink(SinkConfig("f", "file", 100, 0.0, HttpSettings(), options={"path": str(tmp_path / "out.ndjson"), "max_bytes": 1 << 20, "keep": 1, "namespace": "default"}))
    csv_out = ExportWriter(tmp_path / "out.csv", "csv", source.EXPORT_COLUMNS, source.export_row)
    outbox = Outbox(tmp_path / "outbox", 1 << 30)
    es, hec = (load("sink", cfg.type)(cfg) for cfg in parse_config({"sink": [
        {"name": "es", "type": "elasticsearch", "hosts": ["http://127.0.0.1:9"]},
        {"name": "hec", "type": "splunk_hec", "url": ["http://127.0.0.1:9"], "token": "env:HOSTILE_GL_SECRET"},
    ]}).sinks)
    events, bad, cursor = [], [], None
    try:
        for page in source.fetch(None, START, END):
            got, rejected = normalize_records(source, page.records, page.rejected)
            assert all(isinstance(reason, str) and reason for reason, _ in rejected)
            dead.write_many("source:src", rejected)
            for event in got:
                jsoncodec.loads(jsoncodec.dumps(to_ecs(event)))  # the Logstash / file document: valid JSON text
                jsoncodec.loads(jsoncodec.dumps(hec_event(event, index=None, host=None, source=None)))
            for line in es.encode(got) + hec.encode(got):  # the bulk body, the HEC body
                for part in line.splitlines():
                    jsoncodec.loads(part)
            file_sink.send(got)
            csv_out.write(got)
            if got:
                outbox.put(got)
            events += got
            bad += rejected
            for hook in page.on_committed:
                hook()
            cursor = page.cursor or cursor
    finally:
        for closable in (file_sink, source, es, hec):
            closable.close()
    csv_out.close()
    for segment in outbox.segments():
        assert len(outbox.load(segment)) > 0
    if bad:
        lines = (tmp_path / "dl" / "deadletter.ndjson").read_bytes().splitlines()
        assert [json.loads(line)["reason"] for line in lines[-len(bad):]] == [reason for reason, _ in bad]
    return events, bad, cursor


# -- Crusoe ------------------------------------------------------------------------------------
CRUSOE_FIELDS = {
    "start_time": TIMES, "end_time": TIMES, "action": TEXT, "actor_id": TEXT, "actor_email": TEXT,
    "actor_type": TEXT, "target_type": TEXT, "target_ids": st.lists(TEXT), "target_names": st.lists(TEXT),
    "locations": st.lists(TEXT), "client_ip": TEXT, "result": TEXT, "error_message": TEXT, "surface": TEXT,
    "action_detail": TEXT, "organization_id": TEXT, "project_id": TEXT,
}


def crusoe_pass(server, tmp_path, page):
    """One Crusoe pass over a vendor answering ``page`` for every window."""
    server.route = lambda method, path, body: (200, {"items": page, "next_page_token": ""})
    source = build({
        "type": "crusoe", "base_url": server.url, "organization_id": "6f8e2a1c-0d4b-4c3e-9a7f-1b2c3d4e5f60",
        "access_key_id": "key", "secret_key": "env:HOSTILE_CRUSOE_SECRET", "overlap": "1s", "window": "1h",
    }, tmp_path)
    return deliver_everywhere(source, tmp_path)


@SETTINGS
@given(page=st.lists(records(CRUSOE_FIELDS), max_size=4))
def test_crusoe_fetch_and_normalize_take_any_record(server, tmp_path, page):
    events, bad, cursor = crusoe_pass(server, tmp_path, page)
    assert len(events) + len(bad) == len(page)
    assert cursor["until"].startswith(END.strftime("%Y-%m-%dT%H:%M:%S"))


def test_crusoe_record_id_failure_at_the_window_edge_is_a_dead_letter(server, tmp_path):
    edge = END.isoformat()
    page = [{"start_time": edge, "end_time": edge, "action": "Create", "target_ids": {"a": 1}},
            {"start_time": edge, "end_time": 1e300, "action": "Create"},
            {"start_time": edge, "end_time": edge, "action": "Create", "target_ids": ["x"]}]
    events, bad, cursor = crusoe_pass(server, tmp_path, page)
    assert len(events) == 2 and len(bad) == 1 and "target_ids" in bad[0][0]
    assert cursor is not None


# -- Carbon Black Cloud ------------------------------------------------------------------------
CBC_FIELDS = {
    "create_time": TIMES | st.sampled_from([START.isoformat(), END.isoformat(), "2001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]),
    "org_key": TEXT, "actor": TEXT, "actor_ip": TEXT, "description": TEXT, "request_url": TEXT,
    "flagged": st.booleans(), "verbose": st.booleans(), "extra": TEXT,
}


def cbc_table(server, mode):
    return {"type": "carbon_black_cloud", "base_url": server.url, "org_key": "ORG1", "api_id": "id",
            "api_secret": "env:HOSTILE_CBC_SECRET", "rate_limit": 100000.0, "mode": mode}


@SETTINGS
@given(page=st.lists(records(CBC_FIELDS), max_size=4))
def test_carbon_black_search_takes_any_record_and_drops_none_silently(server, tmp_path, page):
    server.route = lambda method, path, body: (200, {"results": page, "num_found": len(page)})
    events, bad, cursor = deliver_everywhere(build(cbc_table(server, "search"), tmp_path), tmp_path)
    at_end = [r for r in page if isinstance(r, dict) and r.get("create_time") == END.isoformat()]
    distinct = {e.id for e in events}
    assert len(distinct) + len(bad) + len(at_end) >= min(1, len(page))  # every record is somewhere
    assert len(events) + len(bad) + len(at_end) <= len(page)
    assert cursor["until"].startswith(END.strftime("%Y-%m-%dT%H:%M:%S"))


def test_carbon_black_search_delivers_a_record_created_outside_the_window(server, tmp_path):
    page = [{"create_time": "2001-01-01T00:00:00Z", "actor": "a@example.com", "description": "old"},
            {"create_time": (START + dt.timedelta(seconds=1)).isoformat(), "actor": "b@example.com", "description": "in"}]
    server.route = lambda method, path, body: (200, {"results": page, "num_found": len(page)})
    events, bad, cursor = deliver_everywhere(build(cbc_table(server, "search"), tmp_path), tmp_path)
    assert sorted(e.message for e in events) == ["in", "old"] and not bad


@SETTINGS
@given(page=st.lists(records(CBC_FIELDS), max_size=4))
def test_carbon_black_queue_takes_any_record(server, tmp_path, page):
    answers = [page, []]
    server.route = lambda method, path, body: (200, {"results": answers.pop(0) if answers else []})
    events, bad, cursor = deliver_everywhere(build(cbc_table(server, "queue"), tmp_path), tmp_path)
    assert len(events) + len(bad) == len(page)
    assert cursor["mode"] == "queue"


def test_carbon_black_queue_keeps_745_good_records_beside_a_lone_surrogate(server, tmp_path):
    good = [{"create_time": (START + dt.timedelta(seconds=i)).isoformat(), "actor": "a@example.com", "description": f"n{i}"} for i in range(745)]
    body = json.dumps({"results": [*good, {"create_time": START.isoformat(), "description": "\ud800"}, {"create_time": 1e300}]}).encode()
    assert b'"\\ud800"' in body
    answers = [body, b'{"results": []}']
    server.route = lambda method, path, _: (200, answers.pop(0) if answers else b'{"results": []}')
    events, bad, _ = deliver_everywhere(build(cbc_table(server, "queue"), tmp_path), tmp_path)
    assert len(events) == 746 and len(bad) == 1 and "create_time" in bad[0][0]


# -- HPE GreenLake -----------------------------------------------------------------------------
GREENLAKE_FIELDS = {
    "id": TEXT, "createdAt": TIMES, "category": TEXT, "description": TEXT, "user": st.fixed_dictionaries({"username": TEXT}),
    "additionalInfo": st.fixed_dictionaries({"ipAddress": TEXT, "serverName": TEXT}), "workspace": st.fixed_dictionaries({"id": TEXT}),
    "application": st.fixed_dictionaries({"id": TEXT}), "region": TEXT, "hasDetails": st.booleans(), "generation": st.integers(),
}


@SETTINGS
@given(page=st.lists(records(GREENLAKE_FIELDS), max_size=4), detail=json_values)
def test_greenlake_fetch_and_normalize_take_any_record(server, tmp_path, page, detail):

    def route(method, path, body):
        if path.endswith("/token"):
            return 200, {"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
        if "/detail" in path:
            return 200, detail
        return 200, {"items": page, "total": len(page), "count": len(page), "offset": 0}

    server.route = route
    source = build({"type": "hpe_greenlake", "base_url": server.url, "workspace_id": "ws", "client_id": "c",
                    "client_secret": "env:HOSTILE_GL_SECRET", "details": True, "rate_limit": 100000.0,
                    "rate_limit_overall": 100000.0}, tmp_path)
    events, bad, cursor = deliver_everywhere(source, tmp_path)
    assert len(events) + len(bad) == len(page)
    assert cursor is not None


# -- Progress MFT ------------------------------------------------------------------------------
MFT_FIELDS = {
    "timestamp": TIMES, "id": TEXT, "actor": TEXT, "actorType": TEXT, "action": TEXT, "resource": TEXT,
    "resourceId": TEXT, "resourceName": TEXT, "outcome": TEXT, "sourceIp": TEXT, "message": TEXT,
}


@SETTINGS
@given(page=st.lists(records(MFT_FIELDS), max_size=4))
def test_progress_mft_fetch_and_normalize_take_any_record(server, tmp_path, mft_key, page):
    events, bad, cursor = mft_pass(server, tmp_path, mft_key, json.dumps(page).encode())
    assert len(events) + len(bad) == len(page)
    assert cursor is not None


def mft_pass(server, tmp_path, key, report, fmt="json"):
    """One Progress MFT pass over a vendor whose every report holds ``report``."""
    def route(method, path, body):
        if path.endswith("/oauth/token"):
            return 200, {"access_token": "t", "token_type": "Bearer", "expires_in": 300}
        if method == "POST":
            return 201, {"id": "r1"}
        if path.startswith("/download/"):
            return 200, report
        return 200, {"id": "r1", "status": 1, "url": "/download/r1"}

    server.route = route
    source = build({"type": "progress_mft", "base_url": server.url, "tenant_id": "tenant", "key_id": "kid",
                    "private_key": f"file:{key}", "poll_interval": 0.01, "report_format": fmt}, tmp_path)
    return deliver_everywhere(source, tmp_path)


@pytest.mark.parametrize("fmt, report", [
    ("json", '{"timestamp": "%(t)s", "id": "1"}\n{"timestamp": "%(t)s", "id": \n{"timestamp": "%(t)s", "id": "3"}\n'),
    ("csv", 'timestamp,id,message\n%(t)s,1,a\n%(t)s,2,' + "x" * 200_000 + '\n%(t)s,3,c\n'),
])
def test_progress_mft_report_row_that_cannot_be_decoded_is_a_dead_letter(server, tmp_path, mft_key, fmt, report):
    events, bad, cursor = mft_pass(server, tmp_path, mft_key, (report % {"t": START.isoformat()}).encode(), fmt)
    assert sorted(e.id for e in events) == ["1", "3"]
    assert len(bad) == 1 and ("line 2 is not JSON" in bad[0][0] or "field larger than field limit" in bad[0][0])
    assert cursor is not None


# -- JSON in and out ---------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_is_written_as_valid_json_and_read_back(value):
    for encoded in (jsoncodec.dumps(value), jsoncodec.canonical(value)):
        encoded.decode("utf-8")  # valid UTF-8 (a lone surrogate is escaped)
        try:
            again = json.loads(encoded)  # exact (orjson reads integers beyond 64 bits as floats)
        except RecursionError:
            again = jsoncodec.loads(encoded)  # the stdlib reads no nesting this deep
        assert jsoncodec.canonical(again) == jsoncodec.canonical(value)  # (== itself recurses too deep for nested lists)


def test_a_page_with_a_lone_surrogate_escape_is_read():
    assert jsoncodec.loads(b'{"results": [{"a": "\\ud800"}, {"a": "ok"}]}') == {"results": [{"a": "\ud800"}, {"a": "ok"}]}
    with pytest.raises(ValueError):
        jsoncodec.loads(b'{"a": NaN}')


def test_nesting_orjson_cannot_write_is_written():
    text = jsoncodec.dumps({"r": nested(1000)})
    assert text == b'{"r":' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert jsoncodec.dumps(jsoncodec.loads(text)) == text


def test_the_dead_letter_write_takes_any_record(tmp_path):
    dead = DeadLetters(tmp_path)
    dead.write_many("source:x", [("deep", nested(1000)), ("surrogate \ud800", {"a": "\udfff"}), ("object", object())])
    lines = [jsoncodec.loads(line) for line in (tmp_path / "deadletter.ndjson").read_bytes().splitlines()]
    assert [line["reason"][:9] for line in lines] == ["deep", "surrogate", "object (r"]
    assert lines[1]["record"] == {"a": "\udfff"} and "record_repr" in lines[2]


# -- the real CLI ------------------------------------------------------------------------------
def test_cli_run_dead_letters_hostile_records_without_a_traceback_and_moves_on(server, tmp_path):
    """Overflowing times, a lone surrogate, nesting orjson cannot write: exit 3, then a clean pass."""
    when = now().replace(microsecond=0) - dt.timedelta(minutes=30)
    page = [
        {"create_time": when.isoformat(), "actor": "a@example.com", "description": "good"},
        {"create_time": when.isoformat(), "actor": "b@example.com", "description": "lone \ud800 surrogate"},
        {"create_time": when.isoformat(), "actor": "c@example.com", "description": "deep", "extra": nested(600)},
        {"create_time": 1e300, "description": "overflowing time"},
        {"create_time": "99999999999999999999", "description": "overflowing epoch text"},
        {"create_time": "0001-01-01T00:00:00+01:00", "description": "before year 1 in UTC"},
    ]

    def route(method, path, body):
        window = json.loads(body)["criteria"]["create_time"]
        inside = window["start"] <= when.isoformat().replace("+00:00", ".000000Z") < window["end"]
        hits = page if inside else []
        return 200, {"results": hits, "num_found": len(hits)}

    server.route = route
    cfg = tmp_path / "forwarder.toml"
    cfg.write_text("\n".join([
        "[state]", f'dir = "{tmp_path / "state"}"',
        "[[source]]", 'name = "cb"', 'type = "carbon_black_cloud"', f'base_url = "{server.url}"', 'org_key = "ORG1"',
        'api_id = "id"', 'api_secret = "env:HOSTILE_CBC_SECRET"', 'lookback = "2h"', "rate_limit = 100000.0",
        "[[sink]]", 'name = "out"', 'type = "file"', f'path = "{tmp_path / "out.ndjson"}"',
    ]) + "\n")
    env = {**os.environ, "HOSTILE_CBC_SECRET": "secret"}
    run = [sys.executable, "-m", "forwarder", "run", "--once", "--config", str(cfg)]

    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 3, first.stderr
    assert "Traceback" not in first.stderr
    delivered = [jsoncodec.loads(line) for line in (tmp_path / "out.ndjson").read_bytes().splitlines()]
    assert sorted(d["message"] for d in delivered) == ["deep", "good", "lone \ud800 surrogate"]
    letters = [jsoncodec.loads(line) for line in (tmp_path / "state" / "deadletter.ndjson").read_bytes().splitlines()]
    assert sorted(d["record"]["description"] for d in letters) == ["before year 1 in UTC", "overflowing epoch text", "overflowing time"]
    assert all("create_time" in d["reason"] for d in letters)

    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert len((tmp_path / "state" / "deadletter.ndjson").read_bytes().splitlines()) == len(letters)


# -- nesting past every C reader -----------------------------------------------------------
_json_texts = st.one_of(
    json_values.map(json.dumps),
    st.text(alphabet='[]{}",:0123456789.eE+-truefalsn \\u', max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(_json_texts)
def test_the_deep_reader_agrees_with_the_standard_library(text):
    try:
        expected = json.loads(text)
    except RecursionError:  # deeper than the stdlib reads: nothing to compare with
        expected = jsoncodec.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            value, end = jsoncodec._decode_deep(text, 0)
            if text[end:].strip():
                raise ValueError("trailing data")
        return
    value, end = jsoncodec._decode_deep(text, 0)
    assert not text[end:].strip()
    assert jsoncodec.canonical(value) == jsoncodec.canonical(expected)


def test_nesting_deeper_than_orjson_and_the_stdlib_read_is_read_everywhere(tmp_path):
    deep = b"[" * 3000 + b'{"k":"\\ud800"}' + b"]" * 3000
    assert jsoncodec.dumps(jsoncodec.loads(deep)) == deep  # a page, an outbox line
    stream = io.StringIO('[{"a": 1}, ' + deep.decode() + ', {"b": 2}]')
    assert [type(v).__name__ for v in jsoncodec.iter_values(stream)] == ["dict", "list", "dict"]  # an export file
    lines = io.StringIO('{"a": 1}\n' + deep.decode() + '\n{"b": 2}\n')
    assert [type(v).__name__ for v in jsoncodec.iter_values(lines)] == ["dict", "list", "dict"]
    with pytest.raises(ValueError):
        jsoncodec.loads(b"[" * (jsoncodec.MAX_DEPTH + 1) + b"]" * (jsoncodec.MAX_DEPTH + 1))


def test_a_log_file_takes_a_lone_surrogate(tmp_path, capsys):
    log_file = tmp_path / "forwarder.log"
    setup_logging(file=str(log_file))
    try:
        logging.getLogger("forwarder.test").warning("vendor said %s", "a\ud800b")
    finally:
        setup_logging()
    assert "a\\ud800b" in log_file.read_text(encoding="utf-8")
    assert "Logging error" not in capsys.readouterr().err


def test_without_orjson_the_same_values_are_written_and_read():
    from tests.test_jsoncodec import _stdlib_codec

    codec = _stdlib_codec()
    value = {"s": "a\ud800", "deep": nested(1500), "big": 2**70}
    text = codec.dumps(value)
    assert text == jsoncodec.dumps(value)
    assert codec.canonical(codec.loads(text)) == jsoncodec.canonical(value)
    with pytest.raises(ValueError):
        codec.loads(b"[NaN]")
