"""The CLI end to end against a vendor simulator: run, backfill, export, daemon, demo, bad input."""

import datetime as dt
import io
import os
import signal
import subprocess
import sys

import pytest

from forwarder import jsoncodec
from forwarder.cli import main
from forwarder.simulators.crusoe import CrusoeSimulator
from forwarder.state import SqliteStore

RECORDS = 400


def write_config(tmp_path, table, **source_extra):
    lines = ["[state]", f'dir = "{tmp_path / "state"}"', "[[source]]"]
    for k, v in {**table, "lookback": "8h", "limit": 100, **source_extra}.items():
        lines.append(f"{k} = {jsoncodec.dumps_str(v)}")
    lines += ["[source.http]", "retries = 2", "backoff_base = 0.01", "backoff_max = 0.02", "timeout = 5",
              "[[sink]]", 'name = "out"', 'type = "file"', f'path = "{tmp_path / "out.ndjson"}"']
    cfg = tmp_path / "forwarder.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@pytest.fixture
def sim(monkeypatch):
    with CrusoeSimulator(seed=3, records=RECORDS) as s:
        table, env = s.demo_source(RECORDS)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        s.table = table
        yield s


def lines(path):
    return [jsoncodec.loads(l) for l in path.read_bytes().splitlines()] if path.exists() else []


def test_run_once_then_nothing_new(tmp_path, sim, capsys):
    cfg = write_config(tmp_path, sim.table)
    assert main(["run", "--once", "--config", str(cfg)]) == 0
    assert len(lines(tmp_path / "out.ndjson")) == RECORDS
    assert "crusoe-demo: 400 events" in capsys.readouterr().err
    assert main(["run", "--once", "--config", str(cfg)]) == 0
    assert len({d["event"]["id"] for d in lines(tmp_path / "out.ndjson")}) == RECORDS


def test_backfill_has_its_own_checkpoint_and_resumes(tmp_path, sim, capsys):
    cfg = write_config(tmp_path, sim.table)
    start = (sim.end.replace(minute=0, second=0) - dt.timedelta(hours=7)).isoformat()
    end = sim.end.isoformat()
    args = ["backfill", "--config", str(cfg), "--source", "crusoe-demo", "--from", start, "--to", end]
    assert main(args) == 0
    first = lines(tmp_path / "out.ndjson")
    assert len({d["event"]["id"] for d in first}) == RECORDS
    store = SqliteStore(tmp_path / "state")
    names = [n for n, _, _ in store.all()]
    store.close()
    assert names == [n for n in names if n.startswith("crusoe-demo@backfill:")] and len(names) == 1
    assert main(args) == 0  # already done: reads nothing again
    assert len(lines(tmp_path / "out.ndjson")) == len(first)


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "xlsx"])
def test_export_touches_no_checkpoint(tmp_path, sim, fmt):
    cfg = write_config(tmp_path, sim.table)
    out = tmp_path / f"audit.{fmt}"
    start = (sim.end - dt.timedelta(hours=7)).isoformat()
    assert main(["export", "--config", str(cfg), "--source", "crusoe-demo", "--from", start,
                 "--to", sim.end.isoformat(), "--format", fmt, "--output", str(out)]) == 0
    assert out.stat().st_size > 0
    if fmt == "ndjson":
        assert len({d["event"]["id"] for d in lines(out)}) == RECORDS
    assert not (tmp_path / "state" / "state.db").exists() or SqliteStore(tmp_path / "state").all() == []


@pytest.mark.parametrize("case, words", [
    ("unreachable", "unreachable after 3 attempts"),
    ("tls", "TLS failure"),
    ("5xx", "returned HTTP 503"),
    ("truncated", "unreachable after 3 attempts"),
    ("bad secret", "401"),
])
def test_bad_input_is_one_line_and_moves_nothing(tmp_path, sim, monkeypatch, capsys, closed_port, case, words):
    table = dict(sim.table)
    if case == "unreachable":
        table["base_url"] = f"http://127.0.0.1:{closed_port}"
    elif case == "tls":
        table["base_url"] = sim.url.replace("http://", "https://")
    elif case == "5xx":
        sim.faults.error_rate = 1.0
    elif case == "truncated":
        sim.faults.truncate_rate = 1.0
    else:
        monkeypatch.setenv("FORWARDER_DEMO_CRUSOE_SECRET_KEY", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo")
    cfg = write_config(tmp_path, table)
    assert main(["run", "--once", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err.strip()
    assert words in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert lines(tmp_path / "out.ndjson") == []
    store = SqliteStore(tmp_path / "state")
    assert store.all() == []
    store.close()


def test_daemon_stops_cleanly_on_sigterm(tmp_path, sim):
    cfg = write_config(tmp_path, sim.table, interval="1h")
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "forwarder", "run", "--config", str(cfg)], env=env,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait for the first pass to be reported
        if "crusoe-demo: 400 events" in line:
            break
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert len(lines(tmp_path / "out.ndjson")) == RECORDS


def test_demo_runs_every_vendor(tmp_path, capsys):
    from forwarder import registry

    assert main(["demo", "--out", str(tmp_path / "demo"), "--events", "50"]) == 0
    out = capsys.readouterr().out
    for vendor in registry.SIMULATORS:
        assert vendor.split("_")[0] in out
    assert "FAILED" not in out
    docs = lines(tmp_path / "demo" / "events.ndjson")
    assert {d["event"]["provider"] for d in docs} == set(registry.SIMULATORS)


def test_simulate_serves_in_the_foreground():
    proc = subprocess.Popen([sys.executable, "-m", "forwarder", "simulate", "crusoe"], stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "crusoe simulator listening on http://127.0.0.1:" in first
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_outbox_sink_down_then_up(tmp_path, sim, capsys, monkeypatch):
    from forwarder.errors import SinkError
    from forwarder.sinks.file import FileSink

    def down(self):  # the target fails at delivery (a path that cannot be written is refused when the config is read)
        raise SinkError(f"sink {self.name}: cannot open {self.path}: target down")

    cfg = write_config(tmp_path, sim.table)
    cfg.write_text(cfg.read_text().replace(f'path = "{tmp_path / "out.ndjson"}"', f'path = "{tmp_path / "out.ndjson"}"\noutbox = true'))
    with monkeypatch.context() as patch:
        patch.setattr(FileSink, "_open", down)
        assert main(["run", "--once", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "crusoe-demo: 400 events" in err and "kept in the outbox" in err
    assert not (tmp_path / "out.ndjson").exists()
    assert main(["run", "--once", "--config", str(cfg)]) == 0
    assert len({d["event"]["id"] for d in lines(tmp_path / "out.ndjson")}) == RECORDS


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_only(tmp_path, sim, capsys):
    from forwarder.cli import LiveProgress
    from forwarder.runner import run_once
    from forwarder.config import load_config

    config = load_config(write_config(tmp_path, sim.table))
    term = _Terminal()
    shown = LiveProgress(term)
    run_once(config, progress=shown)
    shown.close()
    last = term.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("crusoe-demo: ") and f"{RECORDS} events" in last and "reached 20" in last
    (tmp_path / "q").mkdir()
    pipe = io.StringIO()
    quiet = LiveProgress(pipe)
    assert [r.events for r in run_once(load_config(write_config(tmp_path / "q", sim.table)), progress=quiet)] == [RECORDS]
    quiet.close()
    assert pipe.getvalue() == ""
