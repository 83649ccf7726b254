"""The Crusoe source against the strict simulator: paging, windows, dedup, filters, errors, retries."""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import parse_qsl

import pytest

from forwarder import coverage

from forwarder.config import parse_config
from forwarder.errors import AuthError, HttpError, SourceError
from forwarder.event import content_hash
from forwarder.runner import run_once
from forwarder.simulators.base import Faults
from forwarder.simulators.crusoe import CrusoeSimulator
from forwarder.sources.crusoe import CrusoeSource
from forwarder.state import MemoryStore

UTC = dt.timezone.utc
END = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
FAST_HTTP = {"backoff_base": 0.01, "backoff_max": 0.05, "retries": 8, "timeout": 10}


def make_source(sim, tmp_path, monkeypatch, *, secret=None, **extra):
    monkeypatch.setenv("CRUSOE_SIM_SECRET", secret or sim.secret_key)
    table = {
        "name": "crusoe-test",
        "type": "crusoe",
        "base_url": sim.url,
        "organization_id": sim.org_id,
        "access_key_id": sim.access_key_id,
        "secret_key": "env:CRUSOE_SIM_SECRET",
        "http": FAST_HTTP,
        **extra,
    }
    return CrusoeSource(parse_config({"source": [table]}).sources[0], MemoryStore(), tmp_path)


def read_all(source, start, end, cursor=None):
    """Every record and the cursors of one fetch."""
    records, cursors = [], []
    for page in source.fetch(cursor, start, end):
        records.extend(page.records)
        if page.cursor is not None:
            cursors.append(page.cursor)
    return records, cursors


def sim_ids(sim, source, match=lambda r: True):
    return {source.record_id(r) for r in (sim.record(i) for i in range(sim.records)) if match(r)}


# Crusoe does not say which record time start_time/end_time compare against: both must work.
TIME_FIELDS = pytest.mark.parametrize("time_field", ["start_time", "end_time"])


@TIME_FIELDS
def test_pages_across_many_pages_and_windows_without_duplicates(tmp_path, monkeypatch, time_field):
    with CrusoeSimulator(records=1200, span=4 * 3600, end=END, time_field=time_field) as sim:
        src = make_source(sim, tmp_path, monkeypatch, limit=50, window="1h", overlap="30s")
        records, cursors = read_all(src, END - dt.timedelta(hours=5), END + dt.timedelta(minutes=1))
        ids = [src.record_id(r) for r in records]
        assert len(ids) == len(set(ids)) == 1200
        assert set(ids) == sim_ids(sim, src)
        assert len(sim.queries) >= 1200 // 50  # really paged
        assert sum("next_token=" in q for q in sim.queries) >= 20
        assert sim.served > 1200  # windows overlapped, the source dropped the repeats
        assert len(cursors) == 6 and cursors[-1]["until"].startswith(
            (END + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
        )
        for q in sim.queries:  # every request carried the window and the page size
            keys = [k for k, _ in parse_qsl(q)]
            assert keys == sorted(keys) and {"start_time", "end_time", "limit"} <= set(keys)
        src.close()


@TIME_FIELDS
def test_resuming_from_each_cursor_loses_and_repeats_nothing(tmp_path, monkeypatch, time_field):
    start, end = END - dt.timedelta(hours=3), END + dt.timedelta(minutes=1)
    with CrusoeSimulator(records=600, span=3 * 3600, end=END, time_field=time_field) as sim:
        src = make_source(sim, tmp_path, monkeypatch, limit=40, window="30m", overlap="2m")
        full, cursors = read_all(src, start, end)
        assert len(cursors) == 7
        for cut in (1, 3, 5):  # crash after the cut-th window committed, restart from its cursor
            before = []
            for page in src.fetch(None, start, end):
                before.extend(page.records)
                if page.cursor == cursors[cut - 1]:
                    break
            stored = json.loads(json.dumps(cursors[cut - 1]))  # what the checkpoint store keeps
            after, _ = read_all(src, start, end, stored)
            ids = [src.record_id(r) for r in before + after]
            assert len(ids) == len(set(ids)) == 600
        src.close()


@TIME_FIELDS
def test_passes_narrower_than_the_overlap_repeat_nothing(tmp_path, monkeypatch, time_field):
    """A pass of two seconds reaches back past its own start: what the pass before it delivered stays known."""
    with CrusoeSimulator(records=1200, span=3600, end=END, time_field=time_field) as sim:
        src = make_source(sim, tmp_path, monkeypatch, window="1h", overlap="30s")
        start, middle = END - dt.timedelta(hours=1), END - dt.timedelta(minutes=30)
        cuts = [start, middle, middle + dt.timedelta(seconds=2), middle + dt.timedelta(seconds=4), END + dt.timedelta(minutes=1)]
        cursor, ids = None, []
        for a, b in zip(cuts, cuts[1:]):  # one pass per range, each resuming from the last cursor
            records, cursors = read_all(src, a, b, cursor)
            ids += [src.record_id(r) for r in records]
            cursor = json.loads(json.dumps(cursors[-1]))
        assert len(ids) == len(set(ids)) == 1200
        src.close()


def test_boundary_dedup_keeps_genuinely_new_records_at_the_edge(tmp_path, monkeypatch):
    """Records inside the overlap that were NOT delivered before are kept."""
    with CrusoeSimulator(records=300, span=3600, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch, window="20m", overlap="1m")
        start = END - dt.timedelta(hours=1, minutes=1)
        records, cursors = read_all(src, start, END + dt.timedelta(seconds=1))
        first_cursor = cursors[0]
        assert first_cursor["seen"]  # ids at the first edge were remembered
        # Forget one remembered id: its record must come back in the next window.
        forgotten = first_cursor["seen"][0]
        shrunk = dict(first_cursor, seen=first_cursor["seen"][1:])
        again, _ = read_all(src, start, END + dt.timedelta(seconds=1), shrunk)
        assert forgotten in {src.record_id(r) for r in again}
        src.close()


@pytest.mark.parametrize(
    "options, match",
    [
        ({"actions": ["Create", "Delete"]}, lambda r: r["action"] in ("Create", "Delete")),
        ({"actor_types": ["Crusoe Admin", "System"]}, lambda r: r["actor_type"] in ("Crusoe Admin", "System")),
        ({"results_not": ["OK"], "target_types": ["VM", "Disk"]}, lambda r: r["result"] != "OK" and r["target_type"] in ("VM", "Disk")),
        ({"surfaces": ["Crusoe Terraform/v0.5.21"]}, lambda r: r["surface"] == "Crusoe Terraform/v0.5.21"),
        ({"locations": ["us-east1-a"]}, lambda r: "us-east1-a" in str(r["locations"])),
    ],
)
def test_filters_are_sent_and_honoured(tmp_path, monkeypatch, options, match):
    with CrusoeSimulator(records=400, span=3600, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch, limit=30, **options)
        records, _ = read_all(src, END - dt.timedelta(hours=2), END + dt.timedelta(seconds=1))
        expected = sim_ids(sim, src, match)
        assert 0 < len(expected) < 400
        assert {src.record_id(r) for r in records} == expected and len(records) == len(expected)
        for name, values in options.items():
            assert all(dict(parse_qsl(q))[name] == ",".join(values) for q in sim.queries)
        src.close()


def test_project_and_actor_filters(tmp_path, monkeypatch):
    with CrusoeSimulator(records=300, span=3600, end=END) as sim:
        project = sim.projects[2][0]
        user_id, email = sim.actors[0][:2]
        src = make_source(sim, tmp_path, monkeypatch, project_ids=[project], actor_emails=[email, "support@crusoe.ai"])
        records, _ = read_all(src, END - dt.timedelta(hours=2), END + dt.timedelta(seconds=1))
        assert records and all(r["project_id"] == project and r["actor_id"] == user_id for r in records)
        src.close()


def test_api_version_v1_is_signed_with_its_path(tmp_path, monkeypatch):
    with CrusoeSimulator(records=50, span=600, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch, api_version="v1")
        records, _ = read_all(src, END - dt.timedelta(hours=1), END + dt.timedelta(seconds=1))
        assert len(records) == 50 and src.path.startswith("/v1/organizations/")
        src.close()


def test_clock_skew_is_rejected_with_a_one_line_hint(tmp_path, monkeypatch):
    with CrusoeSimulator(records=10, span=600, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch)
        src.http.auth.clock = lambda: dt.datetime.now(UTC) + dt.timedelta(minutes=6)
        with pytest.raises(AuthError) as err:
            read_all(src, END - dt.timedelta(hours=1), END)
        text = str(err.value)
        assert "HTTP 401" in text and "bad_credential" in text and "clock" in text and "\n" not in text
        assert sim.secret_key not in text
        assert "clock skew" in sim.auth_failures[-1]
        assert sim.requests == 1  # a refused signature is not retried
        src.http.auth.clock = lambda: dt.datetime.now(UTC) - dt.timedelta(minutes=4)  # within tolerance
        records, _ = read_all(src, END - dt.timedelta(hours=1), END + dt.timedelta(seconds=1))
        assert len(records) == 10
        src.close()


def test_wrong_secret_names_the_causes_never_the_secret(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "ZmFrZS1zZWNyZXQta2V5LWZvci10ZXN0cy0xMjM0NTY3OA"
    with CrusoeSimulator(records=10, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch, secret=wrong)
        with pytest.raises(AuthError) as err:
            src.check()
        text = str(err.value)
        assert "access_key_id" in text and "secret_key" in text and "clock" in text
        assert wrong not in text and wrong not in caplog.text
        assert sim.auth_failures[-1] == "signature mismatch"
        src.close()


def test_forbidden_organization_explains_the_role(tmp_path, monkeypatch):
    with CrusoeSimulator(records=10, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch)
        src.url = src.url.replace(sim.org_id, "00000000-0000-4000-8000-000000000000")
        src.path = src.path.replace(sim.org_id, "00000000-0000-4000-8000-000000000000")
        with pytest.raises(AuthError) as err:
            src.check()
        assert "HTTP 403" in str(err.value) and "admin role" in str(err.value)
        src.close()


def test_check_reads_one_record_at_most(tmp_path, monkeypatch):
    with CrusoeSimulator(records=100, span=600, end=dt.datetime.now(UTC)) as sim:
        src = make_source(sim, tmp_path, monkeypatch)
        summary = src.check()
        assert sim.org_id in summary and sim.org_name in summary
        assert sim.served == 1 and "limit=1" in sim.queries[-1]
        src.close()


def test_retries_on_5xx_429_and_truncated_bodies(tmp_path, monkeypatch):
    faults = Faults(error_rate=0.25, throttle_rate=0.1, retry_after=0.01, truncate_rate=0.1, seed=3)
    with CrusoeSimulator(records=500, span=3600, end=END, faults=faults) as sim:
        src = make_source(sim, tmp_path, monkeypatch, limit=25)
        records, _ = read_all(src, END - dt.timedelta(hours=2), END + dt.timedelta(seconds=1))
        ids = {src.record_id(r) for r in records}
        assert len(records) == len(ids) == 500
        assert sim.requests > len(sim.queries)  # faults happened and were retried
        statuses = {status for _, _, status in sim.log}
        assert {200, 503, 429} <= statuses
        src.close()


def test_persistent_5xx_fails_after_the_retries(tmp_path, monkeypatch):
    with CrusoeSimulator(records=10, end=END, faults=Faults(error_rate=1.0)) as sim:
        src = make_source(sim, tmp_path, monkeypatch)
        with pytest.raises(HttpError) as err:
            read_all(src, END - dt.timedelta(hours=1), END)
        assert "HTTP 503" in str(err.value) and sim.requests == FAST_HTTP["retries"] + 1
        src.close()


def test_retention_limits_how_far_back_a_read_goes(tmp_path, monkeypatch, caplog):
    with CrusoeSimulator(records=200, span=100 * 86400, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch, window="30d", overlap="1h")
        with caplog.at_level(logging.WARNING):
            records, _ = read_all(src, END - dt.timedelta(days=120), END + dt.timedelta(seconds=1))
        assert "90 days" in caplog.text
        oldest = min(r["start_time"] for r in records)
        assert oldest >= (END - dt.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%S")
        assert 170 <= len(records) <= 181  # about 90 of the 100 days
        notes = src.store.scratch_get("crusoe-test#coverage").values()  # the gap this leaves names its cause
        assert "keeps 90 days" in coverage.likely_cause((END - dt.timedelta(days=120), END - dt.timedelta(days=90)), notes)
        src.close()


def test_end_to_end_into_a_file_sink(tmp_path, monkeypatch):
    with CrusoeSimulator(records=700, span=3 * 3600, end=dt.datetime.now(UTC) - dt.timedelta(minutes=5)) as sim:
        table, env = sim.demo_source(700)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        out = tmp_path / "events.ndjson"
        config = parse_config({
            "state": {"dir": str(tmp_path / "state")},
            "source": [dict(table, limit=100, window="1h", http=FAST_HTTP)],
            "sink": [{"name": "f", "type": "file", "path": str(out)}],
        })
        [result] = run_once(config)
        assert result.error is None and result.events == 700 and result.dead_letters == 0
        docs = [json.loads(line) for line in out.read_text().splitlines()]
        assert len({d["event"]["id"] for d in docs}) == 700
        # A second pass over the same range finds nothing new: the checkpoint moved to the window end.
        [again] = run_once(config)
        assert again.error is None and again.events == 0
        assert sim.secret_key not in out.read_text()


def test_repeated_next_token_is_an_error_not_a_loop(tmp_path, monkeypatch):
    with CrusoeSimulator(records=100, span=600, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch, limit=10)
        stuck = {"items": [sim.record(0)], "next_page_token": "same", "prev_page_token": ""}
        src._get = lambda params: stuck  # the API repeating itself
        pages = src.fetch(None, END - dt.timedelta(hours=1), END)
        assert len(next(pages).records) == 1
        with pytest.raises(SourceError) as err:
            next(pages)  # the repeated page is refused before its records are handed out
        assert "same next_page_token twice" in str(err.value)
        src.close()


def test_record_ids_are_the_documented_composite(tmp_path, monkeypatch):
    with CrusoeSimulator(records=5, end=END) as sim:
        src = make_source(sim, tmp_path, monkeypatch)
        r = sim.record(3)
        event = src.normalize(r)
        spelled = [dt.datetime.fromisoformat(r[k].replace("Z", "+00:00")).isoformat(timespec="microseconds") for k in ("start_time", "end_time")]
        assert event.id == src.record_id(r) == content_hash(
            r["organization_id"], *spelled, r["actor_id"], r["action"], r["action_detail"], r["target_type"],
            sorted(event.details["target_ids"]), r["client_ip"], r["result"], r["surface"],
        )
        src.close()
