"""A server that echoes the request (headers and body) in its error answer: no form of a credential
reaches the error line or the log file.

Each case sends its credential in its own wire form: Basic (Logstash, GreenLake client auth ``basic``),
Elasticsearch ``ApiKey`` (given as ``id:key``, the client base64-encodes it) and Basic, the GreenLake
client secret URL-encoded in a form body, the HEC token, Carbon Black's ``X-Auth-Token``.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote, quote_plus

import pytest

from forwarder import registry
from forwarder.config import parse_config
from forwarder.errors import ForwarderError
from forwarder.event import AuditEvent
from forwarder.logs import setup_logging
from forwarder.state import MemoryStore
from tests.servers.scripted import Scripted

# Characters that change under URL encoding, so the form body's form differs from the raw value.
SECRET = "p@ss w/rd+echo=42&x"
KEY_ID = "keyid-echo-7"
FAST = {"retries": 0, "timeout": 5}


def _echo(seen):
    text = "".join(f"{k}: {v} " for k, v in seen.headers.items()).encode() + seen.body
    return 400, {"Content-Type": "text/plain"}, text


@pytest.fixture
def echo():
    """A server answering every request 400 with the request's headers and body as text."""
    with Scripted(_echo) as server:
        yield server.url


def b64(text):
    return base64.b64encode(text.encode()).decode()


FORMS = [SECRET, quote(SECRET, safe=""), quote_plus(SECRET), b64(f"forwarder:{SECRET}"), b64(f"client-1:{SECRET}"),
         b64(f"{KEY_ID}:{SECRET}"), f"{SECRET}/APIID1"]

SINKS = {
    "logstash": {"url": "{url}", "user": "forwarder", "password": "env:ECHO_SECRET"},
    "elasticsearch-api-key": {"type": "elasticsearch", "hosts": ["{url}"], "api_key": "env:ECHO_KEY"},
    "elasticsearch-basic": {"type": "elasticsearch", "hosts": ["{url}"], "username": "forwarder", "password": "env:ECHO_SECRET"},
    "splunk_hec": {"url": ["{url}"], "token": "env:ECHO_SECRET"},
}
SOURCES = {
    "hpe_greenlake-basic": {"type": "hpe_greenlake", "client_id": "client-1", "client_secret": "env:ECHO_SECRET",
                            "workspace_id": "ws1", "client_auth": "basic"},
    "hpe_greenlake-body": {"type": "hpe_greenlake", "client_id": "client-1", "client_secret": "env:ECHO_SECRET", "workspace_id": "ws1"},
    "carbon_black_cloud": {"org_key": "ORG1", "api_id": "APIID1", "api_secret": "env:ECHO_SECRET"},
}


def _fill(table, url):
    return {k: (v.replace("{url}", url) if isinstance(v, str) else [x.replace("{url}", url) for x in v] if isinstance(v, list) else v)
            for k, v in table.items()}


def _assert_clean(exc, tmp_path):
    log_file = tmp_path / "log.txt"
    setup_logging("debug", "text", str(log_file))
    logging.getLogger("forwarder.test").error("failed: %s", exc)
    texts = {"error line": str(exc), "log file": log_file.read_text()}
    assert "HTTP 400" in texts["error line"]  # the echo did come back
    for where, text in texts.items():
        for form in FORMS:
            assert form not in text, f"{form!r} in the {where}: {text}"


@pytest.mark.parametrize("case", sorted(SINKS))
def test_sinks_redact_every_echoed_form(case, echo, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_SECRET", SECRET)
    monkeypatch.setenv("ECHO_KEY", f"{KEY_ID}:{SECRET}")
    table = {"name": "k", "type": case, "http": FAST, **_fill(SINKS[case], echo)}
    sink = registry.load("sink", table["type"])(parse_config({"sink": [table]}).sinks[0])
    event = AuditEvent.build(vendor="crusoe", product="audit", timestamp=1767225600, tenant_id="t1", raw={"n": 1})
    try:
        with pytest.raises(ForwarderError) as info:
            sink.send([event])
    finally:
        sink.close()
    _assert_clean(info.value, tmp_path)


@pytest.mark.parametrize("case", sorted(SOURCES))
def test_sources_redact_every_echoed_form(case, echo, tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_SECRET", SECRET)
    table = {"name": "s", "type": case, "base_url": echo, "http": FAST, **SOURCES[case]}
    cfg = parse_config({"source": [table]}).sources[0]
    source = registry.load("source", cfg.type)(cfg, MemoryStore(), tmp_path)
    try:
        with pytest.raises(ForwarderError) as info:
            source.check()
    finally:
        source.close()
    _assert_clean(info.value, tmp_path)
