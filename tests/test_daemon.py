"""The daemon as a service: health endpoints, SIGHUP reload (a bad config keeps the old one), SIGTERM drain."""

from __future__ import annotations

import logging
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from forwarder import jsoncodec, metrics, registry
from forwarder.config import parse_config
from forwarder.runner import run_daemon
from forwarder.state import SqliteStore
from forwarder.timeutil import parse_time
from tests.gatesink import BOUND, GateSink
from tests.simulated import crusoe_demo

RECORDS = 200


@pytest.fixture
def sim(monkeypatch):
    with crusoe_demo(RECORDS, monkeypatch, seed=6) as s:
        yield s


def config_text(tmp_path, sources, sink_file):
    lines = ["[state]", f'dir = "{tmp_path / "state"}"']
    for table in sources:
        lines.append("[[source]]")
        lines += [f"{k} = {jsoncodec.dumps_str(v)}" for k, v in {**table, "lookback": "8h", "interval": "1h"}.items()]
    lines += ["[[sink]]", 'name = "out"', 'type = "file"', f'path = "{tmp_path / sink_file}"']
    return "\n".join(lines) + "\n"


class Lines:
    """Standard error of a process, line by line, awaited with a bound."""

    def __init__(self, stream):
        self.queue: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.queue.put(l) for l in stream], daemon=True).start()

    def wait_for(self, pattern: str) -> re.Match:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.seen)}")


def count(path):
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_service_lifecycle_listen_reload_and_stop(tmp_path, sim):
    cfg = tmp_path / "forwarder.toml"
    cfg.write_text(config_text(tmp_path, [sim.table], "out.ndjson"))
    proc = subprocess.Popen([sys.executable, "-m", "forwarder", "run", "-c", str(cfg), "--listen", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        err = Lines(proc.stderr)
        url = err.wait_for(r"serving /metrics, /healthz and /readyz on (http://\S+)").group(1)
        err.wait_for(r"crusoe-demo: 200 events")
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
        scraped = requests.get(f"{url}/metrics", timeout=5).text
        assert 'forwarder_events_delivered_total{sink="out"} 200.0' in scraped

        cfg.write_text("[[source]\nbroken")  # a bad edit: logged, the running config stays
        proc.send_signal(signal.SIGHUP)
        err.wait_for(r"reload refused, the running configuration stays: config: .*not valid TOML")
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert proc.poll() is None

        second = {**sim.table, "name": "crusoe-two"}  # a new checkpoint: it reads everything again
        cfg.write_text(config_text(tmp_path, [sim.table, second], "out2.ndjson"))
        proc.send_signal(signal.SIGHUP)
        err.wait_for(r"reloaded: running 2 sources")
        err.wait_for(r"crusoe-two: 200 events")
        assert count(tmp_path / "out2.ndjson") == RECORDS
        assert count(tmp_path / "out.ndjson") == RECORDS

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=BOUND) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def gate_sink(monkeypatch):
    monkeypatch.setitem(registry.SINKS, "gate", "tests.gatesink:GateSink")
    GateSink.entered, GateSink.gate, GateSink.delivered, GateSink.held_from = threading.Event(), threading.Event(), 0, None
    metrics.reset()
    yield GateSink
    GateSink.gate.set()


def daemon_config(tmp_path, sim):
    return parse_config({
        "state": {"dir": str(tmp_path / "state")},
        "source": [{**sim.table, "lookback": "8h", "interval": "1h", "limit": 50}],
        "sink": [{"name": "held", "type": "gate"}],
    })


def test_stop_waits_for_the_delivery_in_flight_and_commits_it(tmp_path, sim, gate_sink):
    stop, outcome = threading.Event(), []
    daemon = threading.Thread(target=lambda: outcome.append(run_daemon(daemon_config(tmp_path, sim), stop, drain_seconds=BOUND)))
    daemon.start()
    assert gate_sink.entered.wait(BOUND)
    stop.set()  # SIGTERM while a delivery is in flight
    gate_sink.gate.set()
    daemon.join(BOUND)
    assert outcome == [True]
    assert gate_sink.delivered > 0
    store = SqliteStore(tmp_path / "state")
    assert store.get("crusoe-demo") is not None  # what was delivered got committed before the exit
    store.close()


def test_a_drain_that_cannot_finish_gives_up_in_bounded_time(tmp_path, sim, gate_sink):
    stop, outcome = threading.Event(), []
    daemon = threading.Thread(target=lambda: outcome.append(run_daemon(daemon_config(tmp_path, sim), stop, drain_seconds=0.5)))
    daemon.start()
    assert gate_sink.entered.wait(BOUND)
    stop.set()  # the target never answers
    daemon.join(BOUND)
    assert not daemon.is_alive() and outcome == [False]
    store = SqliteStore(tmp_path / "state")
    committed = store.get("crusoe-demo")  # an empty window before the data may commit, nothing held may
    store.close()
    assert committed is None or parse_time(committed["until"]) <= gate_sink.held_from


def test_reload_without_a_file_is_refused_and_the_daemon_goes_on(tmp_path, sim, gate_sink):
    gate_sink.gate.set()
    heard: queue.Queue = queue.Queue()
    handler = logging.Handler()
    handler.emit = lambda record: heard.put(record.getMessage())
    logging.getLogger("forwarder.runner").addHandler(handler)
    stop, reload, outcome = threading.Event(), threading.Event(), []
    daemon = threading.Thread(target=lambda: outcome.append(run_daemon(daemon_config(tmp_path, sim), stop, reload)))
    try:
        daemon.start()
        assert gate_sink.entered.wait(BOUND)
        reload.set()
        message = heard.get(timeout=BOUND)
        while not message.startswith("reload"):
            message = heard.get(timeout=BOUND)
        assert message.startswith("reload refused, the running configuration stays: config: this configuration was not read from a file")
        assert daemon.is_alive()
    finally:
        stop.set()
        daemon.join(BOUND)
        logging.getLogger("forwarder.runner").removeHandler(handler)
    assert outcome == [True]
