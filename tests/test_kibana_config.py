"""`setup kibana` reads the [kibana] table of the config file; flags override it."""

from __future__ import annotations

import pytest

from forwarder import cli
from tests.test_kibana_setup import API_KEY, PASSWORD, SHIPPED, server


def write(tmp_path, body: str):
    path = tmp_path / "forwarder.toml"
    path.write_text(body)
    return path


def test_the_config_file_says_where_kibana_is_and_how_to_log_in(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KIBANA_KEY", API_KEY)
    with server(spaces=("default", "soc")) as kb:
        path = write(tmp_path, f'[kibana]\nurl = "{kb.url}"\napi_key = "env:KIBANA_KEY"\nspace = "soc"\n')
        assert cli.main(["setup", "kibana", "-c", str(path)]) == 0
        assert set(kb.stored("soc")) == SHIPPED
    out = capsys.readouterr()
    assert "space soc" in out.out and API_KEY not in out.out + out.err


def test_forwarder_toml_in_the_working_directory_is_read_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KIBANA_PW", PASSWORD)
    with server() as kb:
        write(tmp_path, f'[kibana]\nurl = "{kb.url}"\nuser = "elastic"\npassword = "env:KIBANA_PW"\n')
        monkeypatch.chdir(tmp_path)
        assert cli.main(["setup", "kibana"]) == 0
        assert set(kb.stored()) == SHIPPED
    assert PASSWORD not in capsys.readouterr().out


def test_flags_override_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KIBANA_KEY", API_KEY)
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    with server() as kb:
        # The file names a Kibana nobody listens on and a wrong password; the flags win on both.
        path = write(tmp_path, '[kibana]\nurl = "http://127.0.0.1:9"\nuser = "elastic"\npassword = "env:WRONG_PW"\n')
        assert cli.main(["setup", "kibana", "-c", str(path), "--url", kb.url, "--api-key", "env:KIBANA_KEY"]) == 0
        assert set(kb.stored()) == SHIPPED


@pytest.mark.parametrize("table, message", [
    ('[kibana]\nurl = "https://k:5601"\napi_key = "literal-key"\n', "kibana.api_key: must be a secret reference"),
    ('[kibana]\nurl = "https://k:5601"\nuser = "u"\n', "kibana.password: user and password go together"),
    ('[kibana]\nurl = "https://k:5601"\napi_key = "env:K"\nuser = "u"\npassword = "env:K"\n', "kibana.api_key: give either api_key or user"),
    ('[kibana]\nurl = "kibana:5601"\n', "kibana.url"),
    ('[kibana]\nhost = "k"\n', "kibana.host: unknown key"),
    ('[kibana.http]\nretries = "many"\n', "kibana.http.retries"),
])
def test_config_errors_are_one_line_naming_the_key(tmp_path, monkeypatch, capsys, table, message):
    monkeypatch.setenv("K", "x")
    path = write(tmp_path, table)
    assert cli.main(["setup", "kibana", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "literal-key" not in err


def test_a_missing_config_file_given_by_flag_is_an_error(tmp_path, capsys):
    assert cli.main(["setup", "kibana", "-c", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err
