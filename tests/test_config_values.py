"""Issue 13 item 4: every bad config value ends in exit 2 and one line naming the key, when the
config is read (never a traceback, a hot loop or a failure later in the run)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forwarder.cli import main
from forwarder.config import parse_config
from forwarder.errors import ConfigError

CRUSOE = {"name": "s", "type": "crusoe", "base_url": "http://127.0.0.1:9", "access_key_id": "AK",
          "organization_id": "01234567-89ab-cdef-0123-456789abcdef", "secret_key": "env:T_CRUSOE_KEY"}
GREENLAKE = {"name": "s", "type": "hpe_greenlake", "base_url": "http://127.0.0.1:9", "client_id": "c",
             "client_secret": "env:T_SECRET", "workspace_id": "w"}
CBC = {"name": "s", "type": "carbon_black_cloud", "base_url": "http://127.0.0.1:9", "org_key": "ABCD1234",
       "api_id": "ID", "api_secret": "env:T_SECRET"}


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Secrets the valid tables refer to, and an MFT key file; returns the MFT source table."""
    monkeypatch.setenv("T_CRUSOE_KEY", base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("="))
    monkeypatch.setenv("T_SECRET", "a-secret-value")
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "mft.pem").write_bytes(key)
    return {"name": "s", "type": "progress_mft", "base_url": "http://127.0.0.1:9", "tenant_id": "t",
            "key_id": "k", "private_key": f"file:{tmp_path / 'mft.pem'}"}


def _toml(value):
    """A TOML literal for the values these tests use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in value) + '"'
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _write(tmp_path, source=None, sink=None, log=None):
    lines = [f'[state]\ndir = "{tmp_path / "state"}"']
    if log:
        lines.append("[log]\n" + "\n".join(f"{k} = {_toml(v)}" for k, v in log.items()))
    for kind, table in (("source", source), ("sink", sink or {"name": "f", "type": "file", "path": str(tmp_path / "o.ndjson")})):
        if table:
            lines.append(f"[[{kind}]]\n" + "\n".join(f"{k} = {_toml(v)}" for k, v in table.items()))
    cfg = tmp_path / "c.toml"
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg


def _one_line_exit_2(cfg, capsys, command=("run", "--once")):
    code = main([*command, "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.strip()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("key, value, words", [
    ("interval", NAN, "interval: not a duration"),
    ("interval", INF, "interval: is longer than 10 years"),
    ("interval", 1e300, "interval: is longer than 10 years"),
    ("lag", "99999999999d", "lag: is longer than 10 years"),
    ("lookback", "99999999999d", "lookback: is longer than 10 years"),
    ("lookback", -INF, "lookback: not a duration"),
    ("overlap", NAN, "overlap: not a duration"),
    ("window", "1" * 400 + "ms", "window: is longer than 10 years"),
    ("access_key_id", "AK\u202eX", "access_key_id: contains the invisible character U+202E"),
    ("organization_id", "01234567-89ab-cdef-0123-456789abcdef\n", "organization_id: contains the invisible character U+000A"),
    ("base_url", "https://" + "a" * 300 + ".example.com", "base_url: has a host name that is not valid"),
    ("base_url", "https://" + "a" * 64 + ".example.com", "base_url: has a host name that is not valid"),
    ("base_url", "https://api_host.example.com", "base_url: has a host name that is not valid"),
    ("base_url", "https://api.example.com:99999", "base_url: has a port that is not"),
    ("base_url", "https://[::zz]/", "base_url: is not valid: '::zz' does not appear"),
    ("http", {"timeout": NAN}, "http.timeout: not a duration"),
    ("http", {"backoff_max": INF}, "http.backoff_max: is longer than 10 years"),
    ("http", {"ca_bundle": "/no/such/ca.pem"}, "http.ca_bundle: /no/such/ca.pem is not a readable file"),
    ("http", {"proxy": "proxy.example.com:3128"}, "http.proxy: must be a proxy URL (http://, https://, socks4://"),
    ("http", {"proxy": "http://u:p@proxy..example.com:3128"}, "http.proxy: has a host name that is not valid"),
])
def test_crusoe_source_values(tmp_path, capsys, env, key, value, words):
    err = _one_line_exit_2(_write(tmp_path, {**CRUSOE, key: value}), capsys)
    assert f'source "s".{words}' in err


@pytest.mark.parametrize("table, key, value, words", [
    ("mft", "window", "99999999999d", "window: is longer than 10 years"),
    ("greenlake", "window", NAN, "window: not a duration"),
    ("greenlake", "rate_limit", NAN, "rate_limit: must be a finite number"),
    ("cbc", "rate_limit", INF, "rate_limit: must be a finite number"),
    ("cbc", "api_id", "ID\u202e", "api_id: contains the invisible character U+202E"),
    ("cbc", "criteria", {"actor": ["al\u2066ice"]}, "criteria.actor[0]: contains the invisible character U+2066"),
])
def test_vendor_source_values(tmp_path, capsys, env, table, key, value, words):
    base = {"mft": env, "greenlake": GREENLAKE, "cbc": CBC}[table]
    err = _one_line_exit_2(_write(tmp_path, {**base, key: value}), capsys)
    assert f'source "s".{words}' in err


def test_a_secret_with_a_bidi_character_is_refused_without_showing_it(tmp_path, capsys, env, monkeypatch):
    monkeypatch.setenv("T_SECRET", "sec\u202eret-value")
    err = _one_line_exit_2(_write(tmp_path, GREENLAKE), capsys)
    assert 'source "s".client_secret: the secret contains the invisible character U+202E' in err
    assert "sec" not in err.replace("secret", "")


def test_a_pem_key_keeps_its_line_breaks(tmp_path, env):
    assert parse_config({"source": [env]}).sources[0].options["private_key"].reveal().count("\n") >= 3


@pytest.mark.parametrize("sink, words", [
    ({"name": "e", "type": "elasticsearch", "cloud_id": "garbage!!", "api_key": "env:T_SECRET"},
     'sink "e".cloud_id: is not an Elastic Cloud id'),
    ({"name": "e", "type": "elasticsearch", "hosts": ["https://" + "b" * 254]}, 'sink "e".hosts: host 1 has a host name'),
    ({"name": "h", "type": "splunk_hec", "url": ["https://splunk:0"], "token": "env:T_SECRET"}, 'sink "h".url:'),
    ({"name": "l", "type": "logstash", "url": "https://-bad-.example"}, 'sink "l".url: has a host name'),
    ({"name": "f", "type": "file", "path": "PLACEHOLDER_FILE/x.ndjson"}, 'sink "f".path: cannot be created:'),
    ({"name": "f", "type": "file", "path": "x" * 256}, 'sink "f".path: has a name longer than 255 bytes'),
    ({"name": "f", "type": "file", "path": "."}, 'sink "f".path: . is a directory'),
])
def test_sink_values(tmp_path, capsys, env, sink, words):
    (tmp_path / "a-file").write_text("")
    sink = {k: (v.replace("PLACEHOLDER_FILE", str(tmp_path / "a-file")) if isinstance(v, str) else v) for k, v in sink.items()}
    err = _one_line_exit_2(_write(tmp_path, sink=sink), capsys)
    assert words in err


@pytest.mark.parametrize("command", [("run", "--once"), ("check",), ("backfill", "--source", "s", "--from", "2026-01-01",
                                     "--to", "2026-01-02", "--no-progress")])
def test_every_command_builds_sources_and_sinks_in_the_config_error_path(tmp_path, capsys, env, monkeypatch, command):
    """A constructor that refuses a value (here the Elasticsearch client, past our own check) is exit 2, one line."""
    import forwarder.sinks.elasticsearch as es

    monkeypatch.setattr(es, "_check_cloud_id", lambda value: None)
    monkeypatch.setitem(es.ElasticsearchSink.OPTIONS, "cloud_id", es.Option("str", None))
    cfg = _write(tmp_path, CRUSOE, {"name": "e", "type": "elasticsearch", "cloud_id": "garbage!!", "api_key": "env:T_SECRET"})
    err = _one_line_exit_2(cfg, capsys, command)
    assert 'sink "e": cannot be set up: ValueError: Cloud ID is not properly formatted' in err


def test_log_file_directory_is_created_or_refused(tmp_path, capsys):
    log_file = tmp_path / "new" / "dir" / "forwarder.log"
    assert main(["run", "--once", "--config", str(_write(tmp_path, log={"file": str(log_file), "level": "debug"}))]) == 0
    assert log_file.is_file()
    (tmp_path / "plain").write_text("")
    err = _one_line_exit_2(_write(tmp_path, log={"file": str(tmp_path / "plain" / "x.log")}), capsys)
    assert "log.file: cannot be created:" in err and "is not a directory" in err


def test_state_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "plain").write_text("")
    cfg = _write(tmp_path)
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "state"), str(tmp_path / "plain")))
    assert "state.dir:" in _one_line_exit_2(cfg, capsys)


@pytest.mark.parametrize("text, words", [
    ("a = " + "[" * 2000 + "]" * 2000, "is not valid TOML: it is nested too deeply"),
    ("a = " + "1" * 5000, "is not valid TOML:"),
    ("[[sink]]\nname = \"\xff\"", "is not valid TOML:"),
    ("[log]\nlevel = " + "[" * 40 + "]" * 40, "log.level: is nested more than 32 levels deep"),
    ('[log]\n"le\u202evel" = "info"', "log: has a key containing the invisible character U+202E"),
])
def test_toml_that_cannot_be_read_is_one_line(tmp_path, capsys, text, words):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(text.encode("utf-8", "surrogateescape") if "\xff" not in text else text.encode("latin-1"))
    assert words in _one_line_exit_2(cfg, capsys)


def test_durations_numbers_and_proxies_that_are_fine(env):
    cfg = parse_config({"source": [{**CRUSOE, "lookback": "3650d", "interval": 1, "lag": 0,
                                    "http": {"proxy": "socks5h://u:p%40ss@proxy.corp.example:1080"}}]})
    assert cfg.sources[0].lookback == 3650 * 86400.0
    assert cfg.sources[0].http.proxy.startswith("socks5h://")
    with pytest.raises(ConfigError, match="interval: must be at least 1"):
        parse_config({"source": [{**CRUSOE, "interval": 0}]})


def test_a_pass_that_crashes_does_not_end_the_daemons_source_thread(tmp_path, env, monkeypatch):
    """Before, an exception out of a pass (``interval = inf`` did it) ended the source's thread
    silently and ``run`` carried on without it."""
    import threading

    from forwarder import runner
    from forwarder.pipeline import PassResult, Pipeline

    config = parse_config({"state": {"dir": str(tmp_path / "state")}, "source": [CRUSOE],
                           "sink": [{"name": "f", "type": "file", "path": str(tmp_path / "o.ndjson")}]})
    config.sources[0].interval = 0.001  # below what the config accepts: this test only needs passes back to back
    stop, calls = threading.Event(), []

    def run_pass(self, source, *args, **kwargs):
        calls.append(source.name)
        if len(calls) == 1:
            raise RuntimeError("boom")
        stop.set()
        return PassResult(source.name, source.VENDOR)

    monkeypatch.setattr(Pipeline, "run_pass", run_pass)
    daemon = threading.Thread(target=runner.run_daemon, args=(config, stop))  # not the main thread: no signal handlers
    daemon.start()
    daemon.join(timeout=60)
    assert not daemon.is_alive() and calls == ["s", "s"]


def test_a_relative_state_dir_is_checked_next_to_the_config_not_in_the_current_directory(tmp_path, monkeypatch):
    from forwarder.config import load_config

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "st").write_text("a file that happens to share the name")
    monkeypatch.chdir(tmp_path / "elsewhere")
    (tmp_path / "conf").mkdir()
    cfg = tmp_path / "conf" / "f.toml"
    cfg.write_text('[state]\ndir = "st"\n')
    assert load_config(cfg).state_dir == (tmp_path / "conf" / "st").resolve()
    (tmp_path / "conf" / "st").write_text("")
    with pytest.raises(ConfigError, match="state.dir: .*conf/st exists and is not a directory"):
        load_config(cfg)


@pytest.mark.parametrize("ref, words", [
    ("file:/dev/zero", "is larger than 256 KiB"),
    ("file:BINARY", "is not UTF-8 text"),
    ("file:/", "cannot read secret file /:"),
])
def test_secret_files_that_are_not_secrets(tmp_path, capsys, ref, words):
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00key")
    table = {**GREENLAKE, "client_secret": ref.replace("BINARY", str(tmp_path / "binary"))}
    err = _one_line_exit_2(_write(tmp_path, table), capsys)
    assert 'source "s".client_secret:' in err and words in err
