"""`coverage` and `backfill --gaps` end to end through the CLI, against the Crusoe and GreenLake simulators."""

import json

import pytest

from forwarder import jsoncodec
from forwarder.cli import main
from forwarder.simulators.crusoe import CrusoeSimulator
from forwarder.simulators.hpe_greenlake import GreenLakeSimulator
from forwarder.state import SqliteStore
from tests.cliconfig import write_config

RECORDS = 300


def config(tmp_path, table, **extra):
    return str(write_config(tmp_path, {**table, **extra}, backoff_max=0.05))


def delivered_ids(tmp_path):
    path = tmp_path / "out.ndjson"
    return [jsoncodec.loads(line)["event"]["id"] for line in path.read_bytes().splitlines()] if path.exists() else []


def coverage_json(cfg, capsys):
    capsys.readouterr()
    code = main(["coverage", "--config", cfg, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(params=["crusoe", "hpe_greenlake"])
def vendor(request, monkeypatch):
    """(simulator, source table, (first lookback, first lag), (second lookback, second lag)) with records in the middle."""
    if request.param == "crusoe":
        sim = CrusoeSimulator(seed=4, records=RECORDS)  # records over the last 6 hours
        runs = (("3h", "4h"), ("1h", "0s"))  # [now-7h, now-4h), then after the reset [now-1h, now)
    else:
        sim = GreenLakeSimulator(seed=4, per_hour=0, rate_limit=None, rate_overall=None)  # demo records: the last 50 to 10 minutes
        runs = (("60m", "30m"), ("15m", "0s"))  # [now-90m, now-30m), then [now-15m, now)
    with sim:
        table, env = sim.demo_source(RECORDS)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield sim, table, runs


def test_a_normal_run_is_covered_a_reset_makes_a_gap_and_backfill_gaps_closes_it(tmp_path, vendor, capsys):
    sim, table, ((lookback1, lag1), (lookback2, lag2)) = vendor
    name = table["name"]
    cfg = config(tmp_path, table, lookback=lookback1, lag=lag1)
    assert main(["run", "--once", "--config", cfg]) == 0
    code, doc = coverage_json(cfg, capsys)
    [report] = doc["sources"]
    first_ids = delivered_ids(tmp_path)
    assert code == 0 and doc["clean"] and report["gaps"] == [] and report["windows"] >= 1
    assert 0 < report["read"] == report["delivered"]["out"] == len(first_ids) == len(set(first_ids))

    assert main(["state", "reset", name, "--config", cfg]) == 0
    cfg = config(tmp_path, table, lookback=lookback2, lag=lag2)
    assert main(["run", "--once", "--config", cfg]) == 0
    code, doc = coverage_json(cfg, capsys)
    [report] = doc["sources"]
    assert code == 4 and not doc["clean"]
    [gap] = report["gaps"]
    assert "state reset at" in gap["cause"] and "lookback" in gap["cause"]
    assert main(["coverage", "--config", cfg]) == 4
    table_out = capsys.readouterr().out
    assert "GAP" in table_out and "state reset" in table_out

    before = set(delivered_ids(tmp_path))
    assert main(["backfill", "--config", cfg, "--source", name, "--gaps", "--no-progress"]) == 0
    code, doc = coverage_json(cfg, capsys)
    [report] = doc["sources"]
    assert code == 0 and report["gaps"] == [] and len(report["covered"]) == 1
    ids = delivered_ids(tmp_path)
    assert set(ids) > before  # the gap held records, and they are delivered now
    assert report["read"] == report["delivered"]["out"] == len(ids) == len(set(ids))  # each window counted once
    assert len(set(ids)) == RECORDS  # every record the simulator serves lies in the covered range
    store = SqliteStore(tmp_path / "state")
    assert all(e.source == name for e in store.ledger(name))
    store.close()


def test_a_vendor_count_that_disagrees_with_what_was_read_is_reported(tmp_path, monkeypatch, capsys):
    with GreenLakeSimulator(seed=5, per_hour=0, rate_limit=None, rate_overall=None) as sim:
        table, env = sim.demo_source(120)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sim.miscount = 1  # says one record more than it serves
        cfg = config(tmp_path, table)
        assert main(["run", "--once", "--config", cfg]) == 0
    code, doc = coverage_json(cfg, capsys)
    [report] = doc["sources"]
    assert code == 4 and report["gaps"] == []
    assert [(m["read"], m["vendor_count"]) for m in report["count_mismatches"]] == [(120, 121)]
    main(["coverage", "--config", cfg])
    assert "COUNT MISMATCH" in capsys.readouterr().out


def test_backfill_without_a_range_or_gaps_is_a_usage_error(tmp_path, capsys):
    assert main(["backfill", "--config", str(tmp_path / "absent.toml"), "--source", "x"]) == 2
    assert "--gaps" in capsys.readouterr().err
