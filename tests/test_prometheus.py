"""A real Prometheus server scrapes the forwarder and answers a query about it.

Debian's ``prometheus`` package (installed by ``.ci/run``) provides the binary.
On a developer machine without it the test skips; in CI (``CI=true``) it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from forwarder import metrics
from forwarder.runner import run_once
from forwarder.server import StatusServer
from tests.simulated import crusoe_demo, file_config

RECORDS = 120
DEADLINE = 60.0  # seconds for Prometheus to start, scrape and answer


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("the prometheus binary is missing in CI: .ci/run must `apt-get install -y prometheus`")
    pytest.skip("prometheus is not installed (apt-get install prometheus); CI installs it and runs this test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def delivered_forwarder(tmp_path, monkeypatch):
    """A forwarder that delivered RECORDS events, serving /metrics on 127.0.0.1."""
    metrics.reset()
    with crusoe_demo(RECORDS, monkeypatch, seed=9) as sim:
        assert [r.events for r in run_once(file_config(tmp_path, [sim.table]))] == [RECORDS]
    server = StatusServer("127.0.0.1:0").start()
    yield server
    server.close()
    metrics.reset()


def query(base: str, promql: str) -> list:
    resp = requests.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    resp.raise_for_status()
    body = resp.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_real_prometheus_scrapes_and_queries(tmp_path, delivered_forwarder):
    binary = prometheus_binary()
    target = delivered_forwarder.url.removeprefix("http://")
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: siem-forwarder\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        result: list = []
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                result = query(base, 'forwarder_events_delivered_total{job="siem-forwarder"}')
            except requests.ConnectionError:
                result = []
            except requests.HTTPError as exc:  # 503 until Prometheus has opened its storage
                if exc.response is None or exc.response.status_code != 503:
                    raise
                result = []
            if result:
                break
            time.sleep(0.2)  # polling a server we do not control; bounded by DEADLINE
        assert result, f"no sample within {DEADLINE}s; log: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
        assert len(result) == 1
        assert result[0]["metric"]["sink"] == "out"
        assert float(result[0]["value"][1]) == RECORDS
        up = query(base, 'up{job="siem-forwarder"}')
        assert [float(r["value"][1]) for r in up] == [1.0]
        read = query(base, 'forwarder_records_read_total{source="crusoe-demo",vendor="crusoe"}')
        assert float(read[0]["value"][1]) == RECORDS
        print("prometheus query forwarder_events_delivered_total ->", result)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
