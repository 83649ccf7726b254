"""Engine glue of the Splunk add-on (``forwarder/splunk_addon.py``), in process.

Checkpoint store (KV store through the splunkd stub, file fallback, newest
wins), the EventWriter sink against splunklib's own writer, option conversion,
proxy URLs, and that ``globalConfig.json`` offers exactly the sources' options.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from splunklib.modularinput import EventWriter

from forwarder import registry
from forwarder.errors import ConfigError, SinkError
from forwarder.event import AuditEvent
from forwarder.options import Option
from forwarder.secrets import Secret, redact
from forwarder.splunk_addon import (
    COLLECTION,
    INPUT_FIELDS,
    INPUTS,
    EventWriterSink,
    FileDocuments,
    InputRun,
    KVStoreDocuments,
    SplunkCheckpointStore,
    from_splunk,
    lookback_seconds,
    proxy_url,
    run_input,
    source_config,
)
from forwarder.splunk_event import hec_event
from forwarder.state import LedgerEntry
from forwarder.timeutil import now
from tests.servers.splunkd import Splunkd
from tests.servers.tls import self_signed, server_context

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_CONFIG = json.loads((ROOT / "splunk_app" / "globalConfig.json").read_text())


@pytest.fixture
def splunkd():
    stub = Splunkd()
    stub.kv[COLLECTION] = {}
    with stub:
        yield stub


def event(i: int = 0) -> AuditEvent:
    return AuditEvent.build(
        vendor="crusoe", product="audit", raw={"i": i}, action="Create", outcome="success",
        timestamp=dt.datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i),
    )


# -- checkpoints -------------------------------------------------------------------
def test_kv_store_round_trip_in_solnlib_layout(splunkd):
    kv = KVStoreDocuments(splunkd.uri, splunkd.session_key)
    store = SplunkCheckpointStore("crusoe", FileDocuments("/nonexistent-not-used"), kv)
    assert store.get("prod") is None
    store.commit("prod", {"until": "2026-03-01T00:00:00Z"})
    doc = splunkd.kv[COLLECTION]["crusoe:prod"]
    assert json.loads(doc["state"])["cursor"] == {"until": "2026-03-01T00:00:00Z"}
    assert store.get("prod") == {"until": "2026-03-01T00:00:00Z"}
    store.scratch_put("prod", "report:1", {"id": 1})
    store.scratch_put("prod", "report:2", {"id": 2})
    store.scratch_delete("prod", "report:1")
    assert store.scratch_get("prod") == {"report:2": {"id": 2}}
    assert set(splunkd.kv[COLLECTION]) == {"crusoe:prod", "crusoe:prod:scratch"}


def test_kv_store_over_splunkd_tls_is_quiet(tmp_path):
    """splunkd's self-signed management port: no urllib3 warning per request (standard error is splunkd.log)."""
    stub = Splunkd(tls=server_context(*self_signed(tmp_path)))
    stub.kv[COLLECTION] = {}
    with stub, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        store = SplunkCheckpointStore("crusoe", FileDocuments(tmp_path / "cp"), KVStoreDocuments(stub.uri, stub.session_key))
        store.commit("prod", {"until": "x"})
        assert store.get("prod") == {"until": "x"} and store.kv is not None
    assert stub.uri.startswith("https://") and "crusoe:prod" in stub.kv[COLLECTION]
    assert [str(w.message) for w in seen] == []


def test_kv_store_refuses_a_wrong_session_key(splunkd, tmp_path):
    kv = KVStoreDocuments(splunkd.uri, "not-the-session-key")
    store = SplunkCheckpointStore("crusoe", FileDocuments(tmp_path), kv)
    store.commit("prod", {"until": "a"})  # falls back to the file
    assert store.kv is None
    assert splunkd.kv[COLLECTION] == {}
    assert FileDocuments(tmp_path).get("crusoe:prod")["cursor"] == {"until": "a"}
    assert "not-the-session-key" not in redact("x not-the-session-key y")


def test_a_kv_outage_mid_run_moves_to_files_and_the_newest_wins(splunkd, tmp_path):
    files = FileDocuments(tmp_path)
    first = SplunkCheckpointStore("cbc", files, KVStoreDocuments(splunkd.uri, splunkd.session_key))
    first.commit("q", {"until": "1"})
    splunkd.kv_down = True
    first.commit("q", {"until": "2"})
    assert first.kv is None and files.get("cbc:q")["cursor"] == {"until": "2"}
    splunkd.kv_down = False
    second = SplunkCheckpointStore("cbc", files, KVStoreDocuments(splunkd.uri, splunkd.session_key))
    assert second.get("q") == {"until": "2"}  # the file is newer than the KV document
    second.commit("q", {"until": "3"})
    assert json.loads(splunkd.kv[COLLECTION]["cbc:q"]["state"])["cursor"] == {"until": "3"}
    assert SplunkCheckpointStore("cbc", files, KVStoreDocuments(splunkd.uri, splunkd.session_key)).get("q") == {"until": "3"}


def test_the_ledger_rides_in_its_own_document_is_replaced_per_window_and_pruned(tmp_path):
    store = SplunkCheckpointStore("crusoe", FileDocuments(tmp_path))
    a = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    old = a - dt.timedelta(days=500)  # past the default 400-day retention
    hour = dt.timedelta(hours=1)
    store.commit("prod", {"until": "1"}, [LedgerEntry("prod", old, old + hour, 1, {"hec": 1}), LedgerEntry("prod", a, a + hour, 5, {"hec": 5}, 0, 6)])
    store.commit("prod", {"until": "2"}, [LedgerEntry("prod", a, a + hour, 6, {"hec": 6}, 0, 6), LedgerEntry("prod", a + hour, a + 2 * hour, 2, {"hec": 2})])
    again = SplunkCheckpointStore("crusoe", FileDocuments(tmp_path))
    assert [(e.start, e.end, e.read, e.delivered, e.vendor_count) for e in again.ledger("prod")] == [
        (a, a + hour, 6, {"hec": 6}, 6), (a + hour, a + 2 * hour, 2, {"hec": 2}, None)]
    assert again.get("prod") == {"until": "2"} and again.ledger("other") == []


def test_file_documents_are_replaced_atomically(tmp_path):
    files = FileDocuments(tmp_path / "cp")
    files.put("a:b", {"x": 1})
    files.put("a:b", {"x": 2})
    assert files.get("a:b") == {"x": 2}
    assert [p.name for p in (tmp_path / "cp").iterdir()] == ["a%3Ab.json"]


# -- events ----------------------------------------------------------------------
def test_event_writer_sink_writes_the_hec_event_json_time_and_sourcetype():
    out, err = io.StringIO(), io.StringIO()
    writer = EventWriter(out, err)
    sink = EventWriterSink(writer, stanza="crusoe_audit://prod", index="audit")
    events = [event(0), event(1)]
    assert sink.send(events) == []
    writer.close()
    written = ET.fromstring(out.getvalue()).findall("event")
    assert len(written) == 2
    for xml_event, ev in zip(written, events):
        envelope = hec_event(ev, index="audit", host=None, source=None)
        assert xml_event.get("stanza") == "crusoe_audit://prod"
        assert xml_event.findtext("sourcetype") == envelope["sourcetype"] == "crusoe:cloud:audit"
        assert xml_event.findtext("index") == "audit"
        assert float(xml_event.findtext("time")) == envelope["time"]
        assert json.loads(xml_event.findtext("data")) == json.loads(json.dumps(envelope["event"]))


def test_event_writer_failure_is_a_sink_error():
    class Broken:
        def write_event(self, _):
            raise BrokenPipeError("splunkd went away")

    with pytest.raises(SinkError, match="splunkd went away"):
        EventWriterSink(Broken(), stanza="x://y", index=None).send([event()])


class CountingWriter:
    """An ``EventWriter`` stand-in that breaks (like a closed pipe to splunkd) after ``fail_after`` events."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.ids: list[str] = []

    def write_event(self, ev) -> None:
        if self.fail_after is not None and len(self.ids) >= self.fail_after:
            raise BrokenPipeError("splunkd closed the pipe")
        self.ids.append(json.loads(ev.data)["id"])


@pytest.mark.parametrize("fail_after", [0, 30])
def test_the_checkpoint_covers_only_events_already_written(splunkd, tmp_path, fail_after):
    """A writer failing mid-run loses nothing: the next run resumes at or before the first unwritten event."""
    spec = INPUTS["crusoe_audit"]
    with registry.load("simulator", "crusoe")(seed=3) as sim:
        table, env = sim.demo_source(60)
        account = {k: str(table[k]) for k in ("base_url", "organization_id", "access_key_id")}
        account["secret_key"] = env[table["secret_key"][4:]]
        params = {"account": "a", "index": "audit", "start": "12h", "lag": "0s", "limit": "7"}
        at = now()

        def run(name: str, writer: CountingWriter):
            kv = KVStoreDocuments(splunkd.uri, splunkd.session_key)
            return run_input(InputRun(spec, name, params, account, tmp_path, kv), writer, clock=lambda: at)

        everything = CountingWriter()
        assert run("reference", everything).error is None
        assert len(everything.ids) >= 60

        broken = CountingWriter(fail_after)
        result = run("prod", broken)
        assert result.error and "splunkd closed the pipe" in result.error
        assert len(broken.ids) == fail_after

        resumed = CountingWriter()
        assert run("prod", resumed).error is None
        assert set(everything.ids) <= set(broken.ids) | set(resumed.ids)
        if fail_after:
            assert len(resumed.ids) < len(everything.ids)  # it resumed rather than starting over


# -- options ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, text, value",
    [
        ("bool", "1", True), ("bool", "false", False), ("int", " 42 ", 42), ("float", "2.5", 2.5),
        ("list", "a, b|c\nd,", ["a", "b", "c", "d"]), ("dict", '{"flagged": true}', {"flagged": True}), ("str", " x ", "x"),
    ],
)
def test_splunk_strings_become_option_values(kind, text, value):
    assert from_splunk(text, Option(kind), "k") == value


@pytest.mark.parametrize("kind, text", [("bool", "maybe"), ("int", "1.5"), ("dict", "[1]"), ("dict", "{bad")])
def test_bad_splunk_strings_name_the_field(kind, text):
    with pytest.raises(ConfigError, match="k:"):
        from_splunk(text, Option(kind), "k")


def test_secrets_become_secret_values():
    value = from_splunk("s3cr3t-value", Option("secret"), "k")
    assert isinstance(value, Secret) and value.reveal() == "s3cr3t-value"


def test_start_is_a_look_back_or_a_time():
    at = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
    assert lookback_seconds("12h", at) == 43200
    assert lookback_seconds("2026-03-01T00:00:00Z", at) == 86400
    assert lookback_seconds(None, at) == 86400
    with pytest.raises(ConfigError, match="start"):
        lookback_seconds("last tuesday", at)


def test_proxy_settings_become_a_url_with_the_password_redacted():
    assert proxy_url({"proxy_enabled": "0", "proxy_url": "p"}) is None
    url = proxy_url({"proxy_enabled": "1", "proxy_type": "socks5", "proxy_rdns": "1", "proxy_url": "proxy.corp", "proxy_port": "1080",
                     "proxy_username": "svc", "proxy_password": "p@ss/word"})
    assert url == "socks5h://svc:p%40ss%2Fword@proxy.corp:1080"
    assert "p%40ss%2Fword" not in redact(url)
    with pytest.raises(ConfigError, match="proxy_type"):
        proxy_url({"proxy_enabled": "1", "proxy_type": "ftp", "proxy_url": "p"})


def test_account_and_input_fields_are_validated_like_the_config_file():
    spec = INPUTS["crusoe_audit"]
    account = {"organization_id": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "access_key_id": "AK1", "secret_key": "c2VjcmV0LWtleS1ieXRlcw==",
               "base_url": "https://api.crusoecloud.com", "disabled": "0", "eai:appName": "TA_siem_forwarder"}
    cfg = source_config(spec, "prod", {"account": "a", "index": "x", "start": "7d", "lag": "5m", "actions": "Create,Delete", "surfaces": ""}, account)
    assert cfg.options["actions"] == ["Create", "Delete"] and cfg.options["surfaces"] == []
    assert cfg.lookback == 7 * 86400 and cfg.lag == 300
    assert isinstance(cfg.options["secret_key"], Secret)
    with pytest.raises(ConfigError, match="organization_id"):
        source_config(spec, "prod", {}, {k: v for k, v in account.items() if k != "organization_id"})


# -- globalConfig.json against the sources' options ---------------------------------
def test_global_config_offers_exactly_the_sources_options():
    tabs = {t["name"]: t for t in GLOBAL_CONFIG["pages"]["configuration"]["tabs"] if "entity" in t}
    services = {s["name"]: s for s in GLOBAL_CONFIG["pages"]["inputs"]["services"]}
    assert set(services) == set(INPUTS)
    for scheme, spec in INPUTS.items():
        options = registry.load("source", spec.source_type).OPTIONS
        account = {e["field"]: e for e in tabs[spec.account_tab]["entity"] if e["field"] != "name"}
        inputs = {e["field"]: e for e in services[scheme]["entity"] if e["field"] not in INPUT_FIELDS}
        assert services[scheme]["inputHelperModule"] == f"{scheme}_helper"
        assert not set(account) & set(inputs), scheme
        for field, entity in {**account, **inputs}.items():
            assert field in options, f"{scheme}: {field} is not an option of the {spec.source_type} source"
            opt = options[field]
            assert bool(entity.get("encrypted")) == (opt.kind == "secret"), f"{scheme}.{field}: encrypted iff secret"
            if opt.choices and "options" in entity and "autoCompleteFields" in entity["options"]:
                offered = {c["value"] for c in entity["options"]["autoCompleteFields"]}
                assert offered <= set(opt.choices), f"{scheme}.{field}: {offered - set(opt.choices)}"
        required = {k for k, o in options.items() if o.required}
        assert required <= set(account) | set(inputs), f"{scheme}: required options missing from the UI: {required - set(account) - set(inputs)}"
        for field in required & set(account):
            assert account[field]["required"], f"{scheme}.{field} must be required in the account form"
    meta = GLOBAL_CONFIG["meta"]
    assert meta["supportedPythonVersion"] == ["3.13"]
    manifest = json.loads((ROOT / "splunk_app" / "package" / "app.manifest").read_text())
    assert manifest["info"]["id"]["name"] == meta["name"]
