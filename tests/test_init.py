"""`init` writes a config that only needs filling in; `check` lists what is left; `simulate` prints a usable block."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forwarder import registry
from forwarder.cli import main
from forwarder.config import parse_config
from forwarder.initconfig import FILL_IN, render, todo

SINK_VALUES = {
    ("splunk_hec", "url"): ["https://splunk.example:8088"],
    ("logstash", "url"): "https://logstash.example:8443/",
    ("elasticsearch", "hosts"): ["https://es.example:9200"],
}


def demo_tables(monkeypatch):
    """Each vendor's simulator demo table (real, valid values) with its secrets in the environment."""
    tables = {}
    for vendor in registry.SIMULATORS:
        with registry.load("simulator", vendor)() as sim:
            table, env = sim.demo_source(10)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        tables[table["type"]] = table
    return tables


def test_every_type_renders_a_config_that_is_valid_once_filled_in(monkeypatch):
    data = tomllib.loads(render(sorted(registry.SOURCES), sorted(registry.SINKS)))
    assert [t["type"] for t in data["source"]] == sorted(registry.SOURCES)
    assert [t["type"] for t in data["sink"]] == sorted(registry.SINKS)
    with pytest.raises(Exception):
        parse_config(data)  # the placeholders are not values
    demo = demo_tables(monkeypatch)
    for table in data["source"]:
        for key, value in list(table.items()):
            if isinstance(value, str) and value.startswith(FILL_IN):
                if key in demo[table["type"]]:
                    table[key] = demo[table["type"]][key]
                else:  # a choice the simulator makes through base_url instead (Progress MFT's region)
                    del table[key]
                    table["base_url"] = demo[table["type"]]["base_url"]
            elif isinstance(value, str) and value.startswith("env:"):
                ref = demo[table["type"]][key]
                monkeypatch.setenv(value[4:], os.environ[ref[4:]])
    for table in data["sink"]:
        for key, value in table.items():
            if FILL_IN in str(value):
                table[key] = SINK_VALUES[table["type"], key]
            elif isinstance(value, str) and value.startswith("env:"):
                monkeypatch.setenv(value[4:], "c2VjcmV0LWlkOnNlY3JldC1rZXk=")
    assert todo(data) == []
    config = parse_config(data)
    assert len(config.sources) == len(registry.SOURCES) and len(config.sinks) == len(registry.SINKS)


def test_check_on_a_fresh_init_lists_exactly_what_to_fill_in(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRUSOE_SECRET_KEY", raising=False)
    monkeypatch.delenv("SPLUNK_HEC_TOKEN", raising=False)
    cfg = tmp_path / "forwarder.toml"
    assert main(["init", "--source", "crusoe", "--sink", "splunk_hec", "-o", str(cfg)]) == 0
    said = capsys.readouterr().out
    assert "export CRUSOE_SECRET_KEY, SPLUNK_HEC_TOKEN" in said and f"check -c {cfg}" in said
    assert main(["check", "-c", str(cfg)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [
        'TODO source "crusoe".organization_id: fill in organization id (UUID)',
        'TODO source "crusoe".access_key_id: fill in API access key id',
        'TODO source "crusoe".secret_key: export CRUSOE_SECRET_KEY=... (or use file:/path/to/secret)',
        'TODO sink "splunk-hec".url: fill in HEC base URL(s), e.g. https://splunk:8088; several are used round-robin with failover',
        'TODO sink "splunk-hec".token: export SPLUNK_HEC_TOKEN=... (or use file:/path/to/secret)',
        "5 values to fill in before `check` can test anything",
    ]
    # init never overwrites a config by accident
    assert main(["init", "-o", str(cfg)]) == 2
    assert "exists (use --force" in capsys.readouterr().err
    assert main(["init", "-o", str(cfg), "--force"]) == 0


def test_init_rejects_an_unknown_type(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["init", "--source", "nope", "-o", "-"])
    assert ex.value.code == 2


def test_simulate_prints_a_block_and_export_line_that_work(tmp_path, capsys, monkeypatch):
    proc = subprocess.Popen(
        [sys.executable, "-m", "forwarder", "simulate", "crusoe", "--records", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("# serving until"):
                break
            lines.append(line.rstrip("\n"))
        exports = [l for l in lines if l.startswith("export ")]
        assert len(exports) == 1
        name, _, value = exports[0][len("export "):].partition("=")
        monkeypatch.setenv(name, shlex.split(value)[0])
        block = "\n".join(lines[lines.index("[[source]]"):])
        cfg = tmp_path / "forwarder.toml"
        cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n{block}\nlookback = "8h"\n'
                       f'[[sink]]\nname = "out"\ntype = "file"\npath = "{tmp_path / "out.ndjson"}"\n')
        assert main(["run", "--once", "-c", str(cfg)]) == 0
        assert len((tmp_path / "out.ndjson").read_bytes().splitlines()) == 60
    finally:
        proc.terminate()
        proc.wait(timeout=20)


_toml = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(["env:X", "FILL IN: a", "env:"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["source", "sink", "state"]), _toml, max_size=3))
def test_todo_takes_any_document(data):
    for key, what in todo(data):
        assert key and what
