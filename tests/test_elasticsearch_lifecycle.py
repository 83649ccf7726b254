"""`setup elasticsearch` with `lifecycle = "dsl"`: the data stream lifecycle instead of ILM (Serverless has no ILM)."""

from __future__ import annotations

import pytest
import requests

from forwarder import cli
from forwarder.config import parse_config
from forwarder.errors import ConfigError, SetupError
from forwarder.sinks.elasticsearch import setup
from tests.test_elasticsearch import STREAM, Target, _local


@pytest.fixture
def server():
    es = _local("9.1.0")
    yield es
    es.stop()


def test_dsl_installs_a_retention_on_the_data_streams_and_no_ilm(server):
    lines = setup(Target(server.url, {}, server, "default").config(lifecycle="dsl", retention="90d"))
    assert not any("ILM policy" in line for line in lines)
    assert not any("forwarder-daily" in line for line in lines)  # daily indices need ILM
    assert "managed by the data stream lifecycle" in lines[-1]
    assert requests.get(f"{server.url}/_ilm/policy/forwarder").status_code == 404
    sim = requests.post(f"{server.url}/_index_template/_simulate_index/{STREAM}").json()["template"]
    assert sim["lifecycle"] == {"enabled": True, "data_retention": "90d"}
    assert sim["settings"]["index"]["lifecycle"]["prefer_ilm"] in (False, "false")  # Elastic's logs@lifecycle ILM does not win
    again = setup(Target(server.url, {}, server, "default").config(lifecycle="dsl", retention="90d"))
    assert [line.rsplit(": ", 1)[1] for line in again[:-1]] == ["unchanged", "unchanged"]


def test_dsl_without_retention_keeps_data(server):
    setup(Target(server.url, {}, server, "default").config(lifecycle="dsl", retention="0s"))
    sim = requests.post(f"{server.url}/_index_template/_simulate_index/{STREAM}").json()["template"]
    assert sim["lifecycle"] == {"enabled": True}


def test_a_shadowing_template_without_our_lifecycle_is_reported(server):
    requests.put(f"{server.url}/_index_template/someone-else",
                 json={"index_patterns": ["logs-forwarder_*"], "priority": 500, "data_stream": {}}).raise_for_status()
    with pytest.raises(SetupError, match="resolved lifecycle: None"):
        setup(Target(server.url, {}, server, "default").config(lifecycle="dsl"))


def test_dsl_is_refused_for_daily_indices():
    table = {"name": "es", "type": "elasticsearch", "hosts": ["https://es:9200"], "index_mode": "daily", "lifecycle": "dsl"}
    with pytest.raises(ConfigError, match='sink "es".lifecycle: dsl manages data streams only'):
        parse_config({"sink": [table]})
    with pytest.raises(ConfigError, match="not one of ilm, dsl"):
        parse_config({"sink": [{**table, "index_mode": "data_stream", "lifecycle": "both"}]})


def test_cli_setup_elasticsearch_with_dsl(server, tmp_path, capsys):
    path = tmp_path / "forwarder.toml"
    path.write_text(f'[[sink]]\nname = "es"\ntype = "elasticsearch"\nhosts = ["{server.url}"]\nlifecycle = "dsl"\nretention = "30d"\n')
    assert cli.main(["setup", "elasticsearch", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "index template forwarder: created" in out and "ILM" not in out
