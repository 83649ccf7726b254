"""Issue 13 item 4: a few hundred odd configs through the CLI's ``main()``, in process.

Each example starts from a valid config (one vendor source, one sink) and replaces or removes
a few keys with odd values of any TOML type. Whatever the values, ``main`` returns 0 or 2,
nothing escapes it, and a 2 comes with exactly one line naming the key. The network is never
reached: a pass is stubbed out, but the config is read, the state directory locked and every
source and sink built exactly as ``run`` does it.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder import registry
from forwarder.cli import main
from forwarder.config import HTTP_OPTIONS, LOG_OPTIONS, SINK_COMMON, SOURCE_COMMON, STATE_OPTIONS
from forwarder.pipeline import PassResult, Pipeline

LOOP = "http://127.0.0.1:9"
SOURCES = {
    "crusoe": {"base_url": LOOP, "organization_id": "01234567-89ab-cdef-0123-456789abcdef", "access_key_id": "AK",
               "secret_key": "env:T_CRUSOE_KEY"},
    "hpe_greenlake": {"base_url": LOOP, "client_id": "c", "client_secret": "env:T_SECRET", "workspace_id": "w"},
    "carbon_black_cloud": {"base_url": LOOP, "org_key": "ABCD1234", "api_id": "ID", "api_secret": "env:T_SECRET"},
    "progress_mft": {"base_url": LOOP, "tenant_id": "t", "key_id": "k", "private_key": "file:mft.pem"},
}
SINKS = {
    "file": {"path": "out.ndjson"},
    "elasticsearch": {"hosts": [LOOP], "api_key": "env:T_SECRET"},
    "splunk_hec": {"url": [LOOP], "token": "env:T_SECRET"},
    "logstash": {"url": LOOP},
}
NASTY = [
    "", "nan", "inf", "-1", "0", "1e300", "99999999999d", "30s", "5m", "3650d", "1.5h", "env:", "env:T_NOPE", "env:T_SECRET",
    "env:T_BIDI", "file:", "file:nope", "file:mft.pem", LOOP, "https://", "https://[::zz]/", "https://a..b", "https://-a.b",
    "https://" + "a" * 300 + ".com", "https://x:99999", "https://x:0", "https://u:p@x", "https://x/?q=1", "http://10.0.0.1",
    "x" * 300, "\u202e", "a\u2066b", "a\nb", "\x00", "\x1b[31m", "\ufeff", "..", "-", ".", "all", "search", "queue",
    "export", "json", "form", "basic", "body", "daily", "data_stream", "debug", "text", "us", "eu", "v1", "v1alpha5",
    "v2beta1", "127.0.0.1", "::1", "2026-01-01", "2026-01-01T00:00:00Z", "99999999999999999999",
    "0001-01-01T00:00:00+01:00", "garbage!!", "name:" + base64.b64encode(b"example.com$abc$def").decode(),
]


def _safe_text(text: str) -> str:
    """Keep drawn strings inside the test's directory when they are used as paths."""
    return text.replace("..", "__").lstrip("/~") if text not in NASTY else text


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2, 10, 1023, 1024, 2**31, 2**63 - 1, -(2**63)]),
    st.floats(),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e300, -0.0, 5e-324, 0.5]),
    st.text(max_size=20).map(_safe_text),
    st.sampled_from(NASTY),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.datetimes(timezones=st.just(dt.timezone.utc)),
    st.dates(),
    st.times(),
)

def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


odd_values = st.one_of(
    scalars,
    st.sampled_from(NASTY),
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                 max_leaves=8),
    st.integers(min_value=30, max_value=200).map(_nested),
)


def _toml_str(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\' or not char.isprintable():
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml(value) -> str:
    """TOML text of any value the strategies draw (inline tables and arrays for nesting)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else "inf" if value == float("inf") else "-inf" if value == float("-inf") else repr(value)
    if isinstance(value, (int, dt.date, dt.time)):
        return value.isoformat().replace("+00:00", "Z") if not isinstance(value, int) else str(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_str(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def _document(data: dict) -> str:
    lines = []
    for table in ("state", "log"):
        if table in data:
            lines.append(f"[{table}]")
            lines += [f"{_toml_str(k)} = {_toml(v)}" for k, v in data[table].items()]
    for kind in ("source", "sink"):
        for table in data.get(kind, []):
            lines.append(f"[[{kind}]]")
            lines += [f"{_toml_str(k)} = {_toml(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@st.composite
def odd_configs(draw):
    """A valid config with one to three keys replaced (or removed)."""
    source_type = draw(st.sampled_from([None, *SOURCES]))
    sink_type = draw(st.sampled_from(sorted(SINKS)))
    data: dict = {"state": {"dir": "state"}, "log": {"level": "warning"}, "sink": [{"name": "o", "type": sink_type, **SINKS[sink_type]}]}
    places = [("state", data["state"], STATE_OPTIONS), ("log", data["log"], LOG_OPTIONS),
              ("sink", data["sink"][0], {**SINK_COMMON, **registry.load("sink", sink_type).OPTIONS})]
    if source_type:
        data["source"] = [{"name": "s", "type": source_type, **SOURCES[source_type]}]
        places.append(("source", data["source"][0], {**SOURCE_COMMON, **registry.load("source", source_type).OPTIONS}))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        _, table, schema = draw(st.sampled_from(places))
        key = draw(st.sampled_from(sorted(schema) + ["zz_unknown", "http.timeout", "http.retries", "http.backoff_max",
                                                     "http.ca_bundle", "http.proxy", "http.verify"]))
        if key.startswith("http.") and "name" in table:  # a key of the [source.http] / [sink.http] table
            http = table.get("http") if isinstance(table.get("http"), dict) else {}
            table["http"] = {**http, key[5:]: draw(odd_values)}
        elif key in table and draw(st.booleans()) and key not in ("name", "type"):
            del table[key]
        elif not key.startswith("http."):
            table[key] = draw(odd_values)
    return data


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Secrets, an MFT key file and a stubbed pass: no network, no files outside ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("T_CRUSOE_KEY", base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("="))
    monkeypatch.setenv("T_SECRET", "a-secret-value")
    monkeypatch.setenv("T_BIDI", "sec\u202eret")
    (tmp_path / "mft.pem").write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    monkeypatch.setattr(Pipeline, "run_pass", lambda self, source, *a, **k: PassResult(source.name, source.VENDOR))
    for kind, names in (("source", registry.SOURCES), ("sink", registry.SINKS)):
        for name in names:
            monkeypatch.setattr(registry.load(kind, name), "check", lambda self: "not probed")
    return tmp_path


# "config: <key>: <problem>", the key in one of the tables (or the --source the backfill names)
KEYED = re.compile(r'^siem-forwarder: error: config: (--source|(source|sink|state|log)\b)')


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=odd_configs(), command=st.sampled_from(["run", "check", "backfill"]))
def test_odd_configs_end_in_exit_0_or_2_with_one_line_naming_the_key(world, capsys, data, command):
    cfg = Path(tempfile.mkdtemp(dir=world)) / "c.toml"
    cfg.write_text(_document(data), encoding="utf-8")
    args = {"run": ["run", "--once"], "check": ["check"],
            "backfill": ["backfill", "--source", "s", "--from", "2026-01-01", "--to", "2026-01-02", "--no-progress"]}[command]
    code = main([*args, "--config", str(cfg)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "a-secret-value" not in err
    assert code in (0, 2), err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert KEYED.match(lines[0]), lines[0]
