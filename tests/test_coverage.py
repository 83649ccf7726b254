"""The coverage ledger: interval arithmetic (properties), causes, the store's ledger, the pipeline's counts."""

import datetime as dt
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forwarder import coverage
from forwarder.config import SinkConfig, SourceConfig
from forwarder.deadletter import DeadLetters
from forwarder.errors import StateError
from forwarder.event import AuditEvent
from forwarder.http import HttpSettings
from forwarder.pipeline import OPEN_WINDOW, Pipeline
from forwarder.sinks.base import Rejected, Sink
from forwarder.sources.base import Page, Source
from forwarder.state import LedgerEntry, SqliteStore
from forwarder.timeutil import now

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)

intervals = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=12)


def covered(ivs, x):
    return any(a <= x < b for a, b in ivs)


# -- interval arithmetic ----------------------------------------------------------------
@given(intervals)
def test_merge_keeps_exactly_the_same_points_as_sorted_disjoint_intervals(ivs):
    merged = coverage.merge(ivs)
    assert all(a < b for a, b in merged)
    assert all(merged[i][1] < merged[i + 1][0] for i in range(len(merged) - 1))  # sorted, apart, not touching
    assert all(covered(ivs, x) == covered(merged, x) for x in range(-1, 62))


@given(intervals)
def test_holes_are_exactly_the_uncovered_time_between_first_and_last(ivs):
    merged = coverage.merge(ivs)
    holes = coverage.holes(merged)
    if not merged:
        assert holes == []
        return
    first, last = merged[0][0], merged[-1][1]
    for x in range(first, last):
        assert covered(holes, x) != covered(merged, x)
    assert all(first <= a < b <= last for a, b in holes)


@given(intervals, st.one_of(st.none(), st.integers(0, 60)), st.one_of(st.none(), st.integers(0, 60)))
def test_clip_keeps_the_points_inside_the_range(ivs, lo, hi):
    clipped = coverage.clip(ivs, lo, hi)
    for x in range(-1, 62):
        inside = (lo is None or x >= lo) and (hi is None or x < hi)
        assert covered(clipped, x) == (covered(ivs, x) and inside)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 10), st.integers(0, 50), st.one_of(st.none(), st.integers(0, 50))), max_size=10))
def test_summary_counts_every_window_and_flags_every_mismatch(rows):
    entries = [LedgerEntry("s", T0 + a * MIN, T0 + (a + w) * MIN, read, {"out": read}, 0, vendor) for a, w, read, vendor in rows]
    report = coverage.summarize("s", entries)
    assert report.windows == len(entries) and report.read == sum(r[2] for r in rows)
    assert report.delivered == ({"out": report.read} if entries else {})
    assert len(report.mismatches) == sum(1 for _, _, read, vendor in rows if vendor is not None and vendor != read)
    assert report.clean == (not report.gaps and not report.mismatches)
    gap_time = sum((g.end - g.start for g in report.gaps), dt.timedelta())
    covered_time = sum((b - a for a, b in report.covered), dt.timedelta())
    if entries:
        assert gap_time + covered_time == report.last - report.first


# -- causes -------------------------------------------------------------------------------
def test_a_gap_names_the_reset_and_the_lookback_that_made_it():
    notes = [
        {"kind": "reset", "at": "2026-01-02T00:00:00Z", "until": coverage.format_time(T0 + 10 * MIN, 6)},
        {"kind": "start", "at": "2026-01-02T00:01:00Z", "start": coverage.format_time(T0 + 30 * MIN + dt.timedelta(microseconds=400), 6)},
        {"kind": "reset", "at": "2026-01-01T00:00:00Z", "until": "not a time"},
    ]
    cause = coverage.likely_cause((T0 + 10 * MIN, T0 + 30 * MIN), notes)
    assert cause is not None and "state reset at 2026-01-02T00:00:00Z" in cause and "lookback" in cause
    assert coverage.likely_cause((T0 + 40 * MIN, T0 + 50 * MIN), notes) is None
    retention = [{"kind": "retention", "at": "x", "from": "2025-01-01T00:00:00Z", "to": coverage.format_time(T0, 6), "days": 90}]
    assert "keeps 90 days" in coverage.likely_cause((T0 - 60 * MIN, T0), retention)


notes = st.lists(st.one_of(
    st.dictionaries(st.sampled_from(["kind", "at", "until", "start", "from", "to", "days"]),
                    st.one_of(st.sampled_from(["reset", "start", "retention", "2026-01-01T00:10:00Z"]), st.integers(), st.none(), st.text(max_size=5))),
    st.integers(), st.text(max_size=5), st.none(),
), max_size=5)


@given(notes)
def test_damaged_notes_never_break_the_report(damaged):
    cause = coverage.likely_cause((T0 + 10 * MIN, T0 + 30 * MIN), damaged)
    assert cause is None or isinstance(cause, str)


# -- the store --------------------------------------------------------------------------
def test_ledger_entries_commit_with_the_cursor_replace_and_prune(state_dir):
    store = SqliteStore(state_dir, ledger_retention=86400 * 2)
    old = LedgerEntry("s", now() - dt.timedelta(days=5), now() - dt.timedelta(days=4), 3, {"out": 3})
    store.commit("s", {"until": "a"}, [old, LedgerEntry("s", T0, T0 + MIN, 5, {"out": 5}, 1, 6)])
    assert store.ledger("s") == []  # both ended more than two days ago: pruned in the same commit
    recent = now() - dt.timedelta(hours=1)
    store.commit("s", {"until": "b"}, [LedgerEntry("s", recent, recent + MIN, 5, {"out": 4}, 1, 6)])
    store.commit("s", {"until": "c"}, [LedgerEntry("s", recent, recent + MIN, 6, {"out": 6}, 0, 6)])  # read again: replaces
    store.close()
    again = SqliteStore(state_dir)
    [entry] = again.ledger("s")
    assert (entry.start, entry.end, entry.read, entry.delivered, entry.dead, entry.vendor_count) == (
        recent, recent + MIN, 6, {"out": 6}, 0, 6)
    assert entry.committed_at is not None and again.ledger("other") == []
    again.close()


def test_a_failed_ledger_write_leaves_the_cursor_where_it_was(state_dir):
    store = SqliteStore(state_dir)
    store.commit("s", {"until": "before"})
    db = sqlite3.connect(state_dir / "state.db")
    db.execute("DROP TABLE ledger")
    db.commit()
    db.close()
    with pytest.raises(StateError):
        store.commit("s", {"until": "after"}, [LedgerEntry("s", T0, T0 + MIN, 1, {"out": 1})])
    assert store.get("s") == {"until": "before"}  # one transaction: neither was written
    store.close()


# -- the pipeline's counts ----------------------------------------------------------------
class WindowSource(Source):
    """Two windows of three pages; the middle page of each commits a cursor inside the window."""

    TYPE = VENDOR = "fake"
    LEDGER = True

    def __init__(self, store, work_dir, stop_after=None):
        super().__init__(SourceConfig("w", "fake", 60, 0, 60, True, HttpSettings()), store, work_dir)
        self.stop_after = stop_after

    def fetch(self, cursor, start, end):
        done = (cursor or {}).get("page", 0)
        for i in range(done, 6):
            if i == self.stop_after:
                raise ValueError("source died")
            w = i // 3
            records = [{"t": coverage.format_time(T0 + w * MIN, 3), "i": f"{i}-{n}"} for n in range(4)] + [{"bad": i}]
            last = i % 3 == 2
            yield Page(records, {"page": i + 1}, covers=(T0 + w * MIN, T0 + (w + 1) * MIN) if last else None,
                       vendor_count=15 if last else None)

    def normalize(self, record):
        return AuditEvent.build(vendor="fake", product="audit", raw=record, timestamp=record["t"])


class ListSink(Sink):
    TYPE = "memory"

    def __init__(self, name, reject=()):
        super().__init__(SinkConfig(name, "memory", 5000, 0.0, HttpSettings()))
        self.reject = set(reject)

    def send(self, events):
        return [Rejected(e, "no") for e in events if e.raw["i"] in self.reject]


def _pass(state_dir, tmp_path, source_kw, reject=()):
    store = SqliteStore(state_dir)
    pipeline = Pipeline([ListSink("a"), ListSink("b", reject)], store, DeadLetters(state_dir))
    result = pipeline.run_pass(WindowSource(store, tmp_path, **source_kw), T0, T0 + 2 * MIN)
    pipeline.close()
    return store, result


def test_each_window_counts_read_dead_and_delivered_per_sink(state_dir, tmp_path):
    store, result = _pass(state_dir, tmp_path, {}, reject={"4-0"})
    assert result.error is None
    entries = store.ledger("w")
    assert [(e.start, e.end, e.read, e.dead, e.delivered, e.vendor_count) for e in entries] == [
        (T0, T0 + MIN, 15, 3, {"a": 12, "b": 12}, 15),
        (T0 + MIN, T0 + 2 * MIN, 15, 3, {"a": 12, "b": 11}, 15),  # b rejected one record of the second window
    ]
    assert OPEN_WINDOW not in store.get("w")
    store.close()


def test_counts_inside_a_window_survive_a_crash_in_the_cursor(state_dir, tmp_path):
    store, first = _pass(state_dir, tmp_path, {"stop_after": 4})
    assert first.error and [e.end for e in store.ledger("w")] == [T0 + MIN]
    assert store.get("w")[OPEN_WINDOW] == {"read": 5, "dead": 1, "delivered": {"a": 4, "b": 4}}  # page 3, inside window 2
    store.close()
    store, second = _pass(state_dir, tmp_path, {})
    assert second.error is None
    assert [(e.read, e.dead, e.delivered) for e in store.ledger("w")] == [(15, 3, {"a": 12, "b": 12})] * 2
    store.close()


def test_metrics_give_lag_windows_gap_seconds_and_mismatches_per_source(state_dir):
    store = SqliteStore(state_dir, ledger_retention=3650 * 86400.0)
    store.commit("s", {"until": "x"}, [
        LedgerEntry("s", T0, T0 + MIN, 4, {"out": 4}, 0, 4),
        LedgerEntry("s", T0 + 3 * MIN, T0 + 4 * MIN, 4, {"out": 4}, 0, 5),
    ])
    metrics = coverage.coverage_metrics(store, ["s", "never-ran"], now=T0 + 10 * MIN)
    store.close()
    assert metrics["s"] == {"lag_seconds": 360.0, "windows": 2.0, "gap_seconds": 120.0, "count_mismatches": 1.0}
    assert metrics["never-ran"] == {"lag_seconds": None, "windows": 0.0, "gap_seconds": 0.0, "count_mismatches": 0.0}
