import pytest

from forwarder.cli import main
from forwarder.config import load_config, parse_config
from forwarder.errors import ConfigError

SINK = {"name": "f", "type": "file", "path": "out.ndjson"}


def _err(data):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_minimal_config_with_defaults():
    cfg = parse_config({"sink": [SINK]})
    assert cfg.sinks[0].options["path"] == "out.ndjson"
    assert cfg.sinks[0].options["max_bytes"] == 256 * 1024 * 1024
    assert cfg.sinks[0].http.verify is True
    assert cfg.log["level"] == "info"


@pytest.mark.parametrize("data, words", [
    ({"sink": [{**SINK, "colour": "red"}]}, 'sink "f".colour: unknown key'),
    ({"sink": [{**SINK, "max_bytes": "big"}]}, 'sink "f".max_bytes: must be an integer'),
    ({"sink": [{**SINK, "max_bytes": 10}]}, 'sink "f".max_bytes: must be at least 1024'),
    ({"sink": [{"name": "f", "type": "file"}]}, 'sink "f".path: is required'),
    ({"sink": [{**SINK, "type": "kafka"}]}, "unknown sink type 'kafka'"),
    ({"sink": [SINK, SINK]}, 'sink "f".name: is used twice'),
    ({"sink": [{**SINK, "name": "bad name!"}]}, ".name: is required: 1-64 letters"),
    ({"sink": [{**SINK, "http": {"timeout": "soon"}}]}, 'sink "f".http.timeout: not a duration'),
    ({"sink": [{**SINK, "http": {"verify": "yes"}}]}, 'sink "f".http.verify: must be true or false'),
    ({"log": {"level": "loud"}}, "log.level: 'loud' is not one of"),
    ({"sinks": []}, "sinks: unknown top-level key"),
    ({"source": {"name": "x"}}, "source: must be written as [[source]]"),
])
def test_errors_name_key_and_problem(data, words):
    assert words in _err(data)


def test_cli_config_error_is_one_line_exit_2(tmp_path, capsys):
    cfg = tmp_path / "f.toml"
    cfg.write_text('[[sink]]\nname = "f"\ntype = "file"\npath = "x"\nsurprise = 1\n')
    assert main(["run", "--once", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'sink "f".surprise: unknown key' in err


def test_bad_toml_and_missing_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sink]\n")
    assert main(["state", "show", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["state", "show", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_relative_state_dir_is_relative_to_config(tmp_path):
    cfg = tmp_path / "f.toml"
    cfg.write_text('[state]\ndir = "st"\n')
    assert load_config(cfg).state_dir == (tmp_path / "st").resolve()
