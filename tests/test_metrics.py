"""Metrics and health endpoints: scraped over HTTP after known simulator runs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from forwarder import jsoncodec, metrics
from forwarder.config import parse_config
from forwarder.errors import ConfigError, HttpError, SinkError
from forwarder.http import HttpClient, HttpSettings, RateLimiter
from forwarder.runner import run_once
from forwarder.server import StatusServer, parse_listen
from forwarder.sinks.file import FileSink
from tests.simulated import crusoe_demo, file_config

RECORDS = 300


@pytest.fixture(autouse=True)
def fresh_metrics():
    """Every test counts from zero."""
    metrics.reset()
    yield
    metrics.reset()


@pytest.fixture
def server():
    s = StatusServer("127.0.0.1:0").start()
    yield s
    s.close()


@pytest.fixture
def sim(monkeypatch):
    with crusoe_demo(RECORDS, monkeypatch, seed=5) as s:
        yield s


def config_for(tmp_path, table, sink_path=None, **sink_extra):
    http = {"retries": 20, "backoff_base": 0.001, "backoff_max": 0.002, "timeout": 5}
    return file_config(tmp_path, [{**table, "limit": 100, "http": http}], sink_path, **sink_extra)


def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, parsed by prometheus_client's own parser."""
    resp = requests.get(f"{server.url}/metrics", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def test_scrape_after_a_known_run_counts_what_happened(tmp_path, sim, server):
    sim.faults.throttle_rate = 0.3  # some 429s, retried after the hinted pause
    sim.faults.retry_after = 0.001
    results = run_once(config_for(tmp_path, sim.table))
    assert [r.error for r in results] == [None]
    written = len((tmp_path / "out.ndjson").read_bytes().splitlines())
    assert written == results[0].events == RECORDS

    m = scrape(server)
    src = (("source", "crusoe-demo"), ("vendor", "crusoe"))
    assert m[("forwarder_records_read_total", src)] == RECORDS
    assert m[("forwarder_events_delivered_total", (("sink", "out"),))] == RECORDS
    assert ("forwarder_dead_letters_total", src) not in m
    assert m[("forwarder_passes_total", (("result", "ok"), *src))] == 1
    assert m[("forwarder_pass_duration_seconds_count", src)] == 1
    assert m[("forwarder_last_success_timestamp_seconds", src)] <= time.time()
    assert m[("forwarder_sink_up", (("sink", "out"),))] == 1
    assert m[("forwarder_queue_depth", (("sink", "out"),))] == 0
    # The committed cursor is at least the source's lag (120 s by default) behind now.
    assert m[("forwarder_checkpoint_lag_seconds", src)] >= 120
    # Every request the simulator answered is counted once, by status class; each 429 was retried.
    by_class = {dict(k[1])["status"]: v for k, v in m.items() if k[0] == "forwarder_http_requests_total"}
    assert sum(by_class.values()) == sim.requests
    throttled = m[("forwarder_http_throttled_total", (("client", "crusoe"),))]
    assert throttled == by_class["4xx"] > 0
    assert m[("forwarder_http_retries_total", (("client", "crusoe"),))] == throttled
    assert m[("forwarder_build_info", (("python", m_python(m)), ("version", "0.1.0")))] == 1


def m_python(m):
    return next(dict(k[1])["python"] for k in m if k[0] == "forwarder_build_info")


def test_no_secret_reaches_the_exposition(tmp_path, sim, server):
    run_once(config_for(tmp_path, sim.table))
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    assert sim.env["FORWARDER_DEMO_CRUSOE_SECRET_KEY"] not in text
    assert sim.table["access_key_id"] not in text
    assert "127.0.0.1" not in text  # no URL either


def _unwritable(monkeypatch) -> None:
    """The file sink's target fails at delivery (a bad path is refused when the config is read)."""
    def down(self):
        raise SinkError("sink out: cannot open out.ndjson: [Errno 5] Input/output error")
    monkeypatch.setattr(FileSink, "_open", down)


def test_dead_letters_and_a_failing_sink(tmp_path, sim, server, monkeypatch):
    sim.faults.seed = 2
    _unwritable(monkeypatch)
    server.configured(["out"])
    results = run_once(config_for(tmp_path, sim.table))
    assert results[0].error and "cannot open" in results[0].error
    m = scrape(server)
    src = (("source", "crusoe-demo"), ("vendor", "crusoe"))
    assert m[("forwarder_passes_total", (("result", "failed"), *src))] == 1
    assert ("forwarder_last_success_timestamp_seconds", src) not in m
    assert m[("forwarder_sink_up", (("sink", "out"),))] == 0
    assert m[("forwarder_sink_failures_total", (("sink", "out"),))] >= 1
    assert ("forwarder_events_delivered_total", (("sink", "out"),)) not in m
    ready = requests.get(f"{server.url}/readyz", timeout=5)
    assert ready.status_code == 503
    problems = ready.json()["problems"]
    assert len(problems) == 1 and problems[0].startswith("sink out: ") and "cannot open" in problems[0]


def test_outbox_gauges_show_what_waits(tmp_path, sim, server, monkeypatch):
    _unwritable(monkeypatch)
    results = run_once(config_for(tmp_path, sim.table, outbox=True))
    assert [r.source for r in results if r.error] == ["sink out"]  # the source committed; the target waits
    m = scrape(server)
    held = list((tmp_path / "state" / "outbox" / "out").glob("*.ndjson"))
    assert m[("forwarder_outbox_batches", (("sink", "out"),))] == len(held) > 0
    assert m[("forwarder_outbox_bytes", (("sink", "out"),))] == sum(p.stat().st_size for p in held)


def test_readiness_follows_config_and_sinks(tmp_path, sim, server):
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    first = requests.get(f"{server.url}/readyz", timeout=5)
    assert first.status_code == 503
    assert first.json() == {"ready": False, "problems": ["configuration not loaded yet"]}
    server.configured(["out"])
    assert requests.get(f"{server.url}/readyz", timeout=5).json()["problems"] == ["sink out: not checked or used yet"]
    run_once(config_for(tmp_path, sim.table))
    ready = requests.get(f"{server.url}/readyz", timeout=5)
    assert ready.status_code == 200 and jsoncodec.loads(ready.content) == {"ready": True, "problems": []}
    assert requests.get(f"{server.url}/nope", timeout=5).status_code == 404


def test_other_modules_register_gauges(server):
    values = {"a": 1.5}
    metrics.register_gauges("forwarder_example_seconds", "An example gauge", ("source",), lambda: [((k,), v) for k, v in values.items()])
    assert scrape(server)[("forwarder_example_seconds", (("source", "a"),))] == 1.5
    values["a"] = 3
    assert scrape(server)[("forwarder_example_seconds", (("source", "a"),))] == 3
    with pytest.raises(ValueError):
        metrics.register_gauges("coverage_gap", "no prefix", (), list)


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:0", ("::1", 0)),
    (":9464", ("0.0.0.0", 9464)),
    ("localhost:80", ("localhost", 80)),
])
def test_parse_listen(value, expected):
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9464", "127.0.0.1", "127.0.0.1:99999", "a b:1", "http://x:1", ""])
def test_bad_listen_is_a_config_error(value):
    with pytest.raises(ConfigError, match="server.listen"):
        parse_config({"server": {"listen": value}})


def test_listen_on_a_taken_port_is_one_line(server):
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match="cannot listen on"):
        StatusServer(f"127.0.0.1:{port}")


def test_without_prometheus_client_the_hooks_do_nothing(tmp_path):
    """The Splunk add-on bundles the engine without prometheus_client: a pass must still run."""
    script = f"""
import sys
sys.modules["prometheus_client"] = None  # import fails like an absent package
from forwarder import metrics
from forwarder.config import parse_config
from forwarder.runner import run_once
from forwarder.simulators.crusoe import CrusoeSimulator
import os
with CrusoeSimulator(seed=1, records=30) as sim:
    table, env = sim.demo_source(30)
    os.environ.update(env)
    config = parse_config({{"state": {{"dir": {str(tmp_path / "state")!r}}},
                           "source": [dict(table, lookback="8h")],
                           "sink": [{{"name": "out", "type": "file", "path": {str(tmp_path / "out.ndjson")!r}}}]}})
    (result,) = run_once(config)
metrics.register_gauges("forwarder_x", "x", (), list)
print(result.events, result.error, metrics.exposition())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["30", "None", "b''"]


@given(st.text(max_size=40))
def test_parse_listen_never_crashes(value):
    try:
        host, port = parse_listen(value)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert 0 <= port <= 65535 and isinstance(host, str)


def test_listens_on_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        s = StatusServer("[::1]:0").start()
    except ConfigError as exc:
        pytest.skip(f"::1 not available here: {exc}")
    try:
        assert s.url.startswith("http://[::1]:")
        assert requests.get(f"{s.url}/healthz", timeout=5).status_code == 200
    finally:
        s.close()


def test_rate_limiter_waits_and_status_classes_are_counted(server):
    client = HttpClient("probe", HttpSettings(retries=0), limiter=RateLimiter(per_minute=600, burst=1))
    try:
        client.request("GET", f"{server.url}/healthz")
        client.request("GET", f"{server.url}/healthz")  # the bucket is empty: about 0.1 s of waiting
        with pytest.raises(HttpError):
            client.request("GET", f"{server.url}/nope")
    finally:
        client.close()
    m = scrape(server)
    assert m[("forwarder_http_requests_total", (("client", "probe"), ("status", "2xx")))] == 2
    assert m[("forwarder_http_requests_total", (("client", "probe"), ("status", "4xx")))] == 1
    assert m[("forwarder_rate_limit_wait_seconds_total", (("client", "probe"),))] >= 0.05
    assert not [k for k in m if k[0].endswith("_created")]


def test_the_coverage_ledger_is_scraped_while_its_pipeline_runs(tmp_path, sim, server):
    from forwarder.pipeline import window_for
    from forwarder.runner import make_pipeline, open_all
    from forwarder.timeutil import now

    config = config_for(tmp_path, sim.table)
    store, sinks, (source,) = open_all(config, config.sources)
    pipeline = make_pipeline(config, sinks, store)
    try:
        start, end = window_for(config.sources[0], now())
        assert pipeline.run_pass(source, start, end).error is None
        m = scrape(server)
        src = (("source", "crusoe-demo"),)
        assert m[("forwarder_coverage_windows", src)] >= 1
        assert m[("forwarder_coverage_gap_seconds", src)] == 0
        assert m[("forwarder_coverage_count_mismatches", src)] == 0
        assert m[("forwarder_coverage_lag_seconds", src)] >= 0
    finally:
        pipeline.close()
        source.close()
    store.close()
    assert not [k for k in scrape(server) if k[0].startswith("forwarder_coverage")]  # its pipeline closed


def test_an_unreadable_ledger_leaves_the_scrape_answering(server):
    def broken():
        raise RuntimeError("database is gone")

    metrics.watch_coverage(broken)
    m = scrape(server)
    assert ("forwarder_build_info" in {k[0] for k in m}) and not [k for k in m if k[0].startswith("forwarder_coverage")]
