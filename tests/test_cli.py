import subprocess
import sys

from forwarder.cli import main
from forwarder.state import SqliteStore


def _config(tmp_path, extra=""):
    cfg = tmp_path / "f.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[[sink]]\nname = "f"\ntype = "file"\npath = "{tmp_path / "o.ndjson"}"\n{extra}')
    return cfg


def test_state_show_and_reset(tmp_path, capsys):
    cfg = _config(tmp_path)
    store = SqliteStore(tmp_path / "state")
    store.commit("src-a", {"until": "2026-01-01T00:00:00Z"})
    store.close()
    assert main(["state", "show", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "src-a" in out and "2026-01-01T00:00:00Z" in out
    assert main(["state", "reset", "src-a", "--config", str(cfg)]) == 0
    assert main(["state", "reset", "src-a", "--config", str(cfg)]) == 2
    assert "no checkpoint named 'src-a'" in capsys.readouterr().err


def test_usage_errors_exit_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "forwarder", "backfill", "--config", "x.toml", "--source", "a",
                           "--from", "not-a-time", "--to", "2026-01-01"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "not a timestamp" in proc.stderr


def test_unknown_source_for_backfill(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["backfill", "--config", str(cfg), "--source", "ghost", "--from", "2026-01-01", "--to", "2026-01-02", "--no-progress"]) == 2
    assert "no source named 'ghost'" in capsys.readouterr().err


def test_check_reports_sinks(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["check", "--config", str(cfg)]) == 0
    assert "ok   sink f: writing to" in capsys.readouterr().out


def test_run_once_without_sources_is_fine_and_without_sinks_is_an_error(tmp_path, capsys):
    assert main(["run", "--once", "--config", str(_config(tmp_path))]) == 0
    empty = tmp_path / "e.toml"
    empty.write_text("")
    assert main(["run", "--once", "--config", str(empty)]) == 2
    assert "no [[sink]] is configured" in capsys.readouterr().err


def test_check_names_a_failing_sink_once(tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[[sink]]\nname = "f"\ntype = "file"\npath = "{blocker / "x.ndjson"}"\n')
    # a path that can never be created is refused when the config is read: one line, the sink named once
    assert main(["check", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count('sink "f"') == 1 and "not a directory" in err
