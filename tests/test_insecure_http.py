"""Sinks refuse to send credentials in clear, and ``verify = false`` is said once, not per request.

HEC, Elasticsearch and Logstash URLs with plain ``http://`` to a non-loopback host are a config
error naming the key (exit 2) unless the sink sets ``allow_insecure_http = true`` (the rule sources
apply to their ``base_url``: ``forwarder.options.cleartext``). With ``verify = false`` each source and
sink logs one warning per process, and urllib3's per-request ``InsecureRequestWarning`` is muted.
"""

from __future__ import annotations

import logging
import uuid
import warnings

import pytest
import urllib3

from forwarder import cli, registry
from forwarder.config import parse_config
from forwarder.errors import ConfigError
from forwarder.event import AuditEvent
from forwarder.state import MemoryStore
from tests.servers.scripted import Scripted
from tests.servers.tls import self_signed, server_context

SINKS = {
    "splunk_hec": ("url", lambda u: {"url": [u], "token": "env:TLS_SECRET"}),
    "elasticsearch": ("hosts", lambda u: {"hosts": [u], "api_key": "env:TLS_SECRET"}),
    "logstash": ("url", lambda u: {"url": u, "user": "forwarder", "password": "env:TLS_SECRET"}),
}


def sink_config(kind, url, **extra):
    key, table = SINKS[kind]
    return {"sink": [{"name": "k", "type": kind, **table(url), **extra}]}


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("TLS_SECRET", "tls-secret-value-1")


@pytest.mark.parametrize("kind", sorted(SINKS))
@pytest.mark.parametrize("url", ["http://siem.example.com:8088", "http://10.0.0.5:9200", "http://[2001:db8::1]:8080"])
def test_cleartext_to_another_host_is_a_config_error_naming_the_key(kind, url):
    with pytest.raises(ConfigError) as info:
        parse_config(sink_config(kind, url))
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f'config: sink "k".{SINKS[kind][0]}: plain http://')
    assert "allow_insecure_http" in str(info.value)


@pytest.mark.parametrize("kind", sorted(SINKS))
@pytest.mark.parametrize("url", ["https://siem.example.com:8088", "http://127.0.0.1:8088", "http://localhost:9200", "http://[::1]:8080"])
def test_https_and_loopback_need_no_opt_in(kind, url):
    assert parse_config(sink_config(kind, url)).sinks[0].options["allow_insecure_http"] is False


@pytest.mark.parametrize("kind", sorted(SINKS))
def test_the_opt_in_accepts_cleartext(kind):
    assert parse_config(sink_config(kind, "http://siem.example.com:8088", allow_insecure_http=True)).sinks


def test_the_cli_exits_2_with_one_line(tmp_path, capsys):
    config = tmp_path / "forwarder.toml"
    config.write_text('[[sink]]\nname = "hec"\ntype = "splunk_hec"\nurl = ["http://splunk.example.com:8088"]\ntoken = "env:TLS_SECRET"\n')
    assert cli.main(["check", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and 'sink "hec".url: plain http://' in err


@pytest.fixture
def tls(tmp_path):
    return server_context(*self_signed(tmp_path))


@pytest.fixture
def forwarder_warnings():
    """Warnings logged by the HTTP layer (a handler of its own: logging set-up may stop propagation)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("forwarder.http")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_verify_false_warns_once_per_sink_and_mutes_urllib3(tls, forwarder_warnings):
    name = f"k-{uuid.uuid4().hex[:8]}"
    with Scripted(lambda seen: (200, {}, b"ok"), tls=tls) as server, warnings.catch_warnings(record=True) as caught:
        table = {"name": name, "type": "logstash", "url": server.url, "http": {"verify": False}}
        config = parse_config({"sink": [table]}).sinks[0]
        for _ in range(2):  # a second instance in the same run (a reload) says nothing new
            sink = registry.load("sink", "logstash")(config)
            for n in range(3):
                sink.send([AuditEvent.build(vendor="crusoe", product="audit", timestamp=1767225600 + n, tenant_id="t", raw={"n": n})])
            sink.close()
    assert len(server.seen) == 6
    assert [r.getMessage() for r in forwarder_warnings] == [
        f"sink {name}: verify = false: TLS certificates are not checked, so credentials can reach an impostor"]
    assert not [w for w in caught if issubclass(w.category, urllib3.exceptions.InsecureRequestWarning)]


@pytest.mark.parametrize("kind", ["elasticsearch", "carbon_black_cloud"])
def test_verify_false_is_never_silent(kind, tmp_path, forwarder_warnings):
    name = f"x-{uuid.uuid4().hex[:8]}"
    if kind == "elasticsearch":
        table = {"name": name, "type": kind, "hosts": ["https://127.0.0.1:9200"], "api_key": "env:TLS_SECRET", "http": {"verify": False}}
        registry.load("sink", kind)(parse_config({"sink": [table]}).sinks[0]).close()
        where = f"sink {name}"
    else:
        table = {"name": name, "type": kind, "base_url": "https://127.0.0.1:1", "org_key": "ORG1", "api_id": "ID1",
                 "api_secret": "env:TLS_SECRET", "http": {"verify": False}}
        registry.load("source", kind)(parse_config({"source": [table]}).sources[0], MemoryStore(), tmp_path).close()
        where = f"source {name}"
    assert [r.getMessage().split(":")[0] for r in forwarder_warnings] == [where]
