"""Pipeline mechanics with in-test sources and sinks (vendor end-to-end tests live elsewhere)."""

import threading

import pytest

from forwarder import jsoncodec
from forwarder.config import SinkConfig, SourceConfig
from forwarder.deadletter import DeadLetters
from forwarder.errors import SinkError, SourceError
from forwarder.event import AuditEvent
from forwarder.http import HttpSettings
from forwarder.pipeline import Pipeline, describe
from forwarder.sinks.base import Rejected, Sink
from forwarder.sources.base import Page, Source
from forwarder.state import SqliteStore
from forwarder.timeutil import now


class ListSource(Source):
    """Serves fixed pages; the cursor is the index of the next page."""

    TYPE = VENDOR = "fake"

    def __init__(self, pages, store, work_dir, hooks_log=None):
        cfg = SourceConfig("fake", "fake", 60, 0, 60, True, HttpSettings())
        super().__init__(cfg, store, work_dir)
        self.pages = pages
        self.fetched = 0
        self.hooks_log = hooks_log if hooks_log is not None else []

    def fetch(self, cursor, start, end):
        for i in range((cursor or {}).get("next", 0), len(self.pages)):
            self.fetched += 1
            yield Page(self.pages[i], {"next": i + 1},
                       on_committed=[lambda i=i: self.hooks_log.append((i, threading.current_thread().name))])

    def normalize(self, record):
        if "bad" in record:
            raise ValueError("record has no time")
        return AuditEvent.build(vendor="fake", product="audit", raw=record, timestamp=record["t"])


class MemorySink(Sink):
    TYPE = "memory"

    def __init__(self, name, fail_on=None, reject=None, gate=None):
        super().__init__(SinkConfig(name, "memory", 5000, 0.0, HttpSettings()))
        self.got = []
        self.fail_on = fail_on  # fail when a batch contains this record id "i"
        self.reject = reject or set()
        self.gate = gate

    def send(self, events):
        if self.gate is not None:
            self.gate.wait()
        if self.fail_on is not None and any(e.raw["i"] == self.fail_on for e in events):
            raise SinkError(f"sink {self.name}: target down")
        ok = [e for e in events if e.raw["i"] not in self.reject]
        self.got.extend(e.raw["i"] for e in ok)
        return [Rejected(e, "mapping conflict") for e in events if e.raw["i"] in self.reject]


def pages(n_pages, per_page):
    return [[{"i": p * per_page + k, "t": 1700000000 + p * per_page + k} for k in range(per_page)] for p in range(n_pages)]


def run(source, sinks, store, dl_dir, **kw):
    pipe = Pipeline(sinks, store, DeadLetters(dl_dir), **kw)
    try:
        return pipe.run_pass(source, now(), now())
    finally:
        pipe.close()


def test_all_pages_reach_every_sink_and_checkpoint_moves(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    a, b = MemorySink("a"), MemorySink("b")
    result = run(ListSource(pages(5, 10), store, tmp_path), [a, b], store, state_dir)
    assert result.error is None and result.events == 50
    assert a.got == b.got == list(range(50))
    assert store.get("fake") == {"next": 5}


def test_checkpoint_stops_before_a_failed_page_and_resumes(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    good, flaky = MemorySink("good"), MemorySink("flaky", fail_on=25)
    result = run(ListSource(pages(5, 10), store, tmp_path), [good, flaky], store, state_dir, queue_pages=1)
    assert result.error == "sink flaky: target down"
    cursor = store.get("fake")
    assert cursor is not None and cursor["next"] <= 2  # page 2 (ids 20-29) was never accepted by flaky
    assert 25 not in flaky.got
    # second run: the target is back; everything from the checkpoint on is delivered again
    flaky.fail_on = None
    result = run(ListSource(pages(5, 10), store, tmp_path), [good, flaky], store, state_dir)
    assert result.error is None
    assert set(flaky.got) == set(range(50))
    assert store.get("fake") == {"next": 5}


def test_bad_records_and_rejected_events_are_dead_lettered(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    data = pages(2, 3)
    data[0][1] = {"i": 1, "bad": True}
    sink = MemorySink("s", reject={4})
    result = run(ListSource(data, store, tmp_path), [sink], store, state_dir)
    assert result.error is None and result.dead_letters == 1
    assert sink.got == [0, 2, 3, 5]
    letters = [jsoncodec.loads(l) for l in (state_dir / "deadletter.ndjson").read_bytes().splitlines()]
    assert {(l["origin"], l["reason"].split(":")[0]) for l in letters} == {("source:fake", "cannot normalize"), ("sink:s", "mapping conflict")}
    assert any(l["record"] == {"i": 1, "bad": True} for l in letters)
    assert store.get("fake") == {"next": 2}


def test_backpressure_bounds_pages_in_flight(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    gate = threading.Event()
    sink = MemorySink("slow", gate=gate)
    sink.config.batch_events = 1
    source = ListSource(pages(50, 2), store, tmp_path)
    pipe = Pipeline([sink], store, DeadLetters(state_dir), queue_pages=2)
    t = threading.Thread(target=lambda: pipe.run_pass(source, now(), now()))
    t.start()
    t.join(1.0)  # give the source every chance to run ahead
    in_flight = source.fetched
    gate.set()
    t.join()
    pipe.close()
    # one batch held by the blocked sink + 2 queued + 1 being put = at most 4 pages read ahead
    assert in_flight <= 4
    assert sink.got == list(range(100))


def test_hooks_run_after_commit_in_the_source_thread(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    log = []
    source = ListSource(pages(3, 1), store, tmp_path, hooks_log=log)
    done = []
    t = threading.Thread(target=lambda: done.append(run(source, [MemorySink("s")], store, state_dir)), name="the-source")
    t.start()
    t.join()
    assert [i for i, _ in log] == [0, 1, 2]
    assert {name for _, name in log} == {"the-source"}


def test_empty_and_fully_bad_pages_still_advance_in_order(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    data = [[{"i": 0, "t": 0}], [], [{"i": 1, "bad": 1}], [{"i": 2, "t": 0}]]
    sink = MemorySink("s")
    result = run(ListSource(data, store, tmp_path), [sink], store, state_dir)
    assert result.error is None and sink.got == [0, 2] and store.get("fake") == {"next": 4}


def test_a_crashing_sink_is_one_line_and_commits_nothing(state_dir, tmp_path):
    class Broken(MemorySink):
        def send(self, events):
            raise KeyError("oops")

    store = SqliteStore(state_dir)
    result = run(ListSource(pages(2, 2), store, tmp_path), [Broken("b")], store, state_dir)
    assert result.error == "sink b: unexpected KeyError: 'oops'"
    assert store.get("fake") is None


def test_a_failing_source_still_commits_what_it_delivered(state_dir, tmp_path):
    class Dies(ListSource):
        def fetch(self, cursor, start, end):
            yield from super().fetch(cursor, start, end)
            raise SourceError("vendor: window overflows at one-second width")

    store = SqliteStore(state_dir)
    sink = MemorySink("s")
    pipe = Pipeline([sink], store, DeadLetters(state_dir))
    result = pipe.run_pass(Dies(pages(3, 2), store, tmp_path), now(), now())
    assert result.error == "vendor: window overflows at one-second width"
    assert result.cursor == {"next": 3} and store.get("fake") == {"next": 3}
    pipe.close()


def test_pause_ends_early_when_stopping(state_dir, tmp_path):
    source = ListSource([], SqliteStore(state_dir), tmp_path)
    source.pause(0)  # not stopping: returns
    source.stopping.set()
    with pytest.raises(SourceError) as info:
        source.pause(3600)
    assert "stopped while waiting" in str(info.value)


def test_a_failed_pass_counts_what_was_delivered_not_what_was_read(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    sink = MemorySink("a", fail_on=25)  # the batch holding record 25 fails
    result = run(ListSource(pages(5, 10), store, tmp_path), [sink], store, state_dir, queue_pages=1)
    assert result.error is not None
    assert result.delivered == len(sink.got) < result.events
    assert describe(result).startswith(f"source fake: {result.delivered} of {result.events} events delivered, ")


class SyncingSink(MemorySink):
    """Writes on ``send``, makes durable on ``sync`` (like the file sink): records what every
    sync covered and what the store had committed when it ran."""

    SYNC_AGE = 30.0  # longer than any test: only sync_due and the end of a pass make it sync

    def __init__(self, name, store, every=None, fail_sync=False, batch=5000):
        super().__init__(name)
        self.config = SinkConfig(name, "memory", batch, 0.0, HttpSettings())
        self.store, self.every, self.fail_sync = store, every, fail_sync
        self.written = 0
        self.syncs = []  # (events written so far, cursor committed when the sync began)

    def send(self, events):
        self.written += len(events)
        return super().send(events)

    def sync_due(self):
        return self.every is not None and self.written - (self.syncs[-1][0] if self.syncs else 0) >= self.every

    def sync(self):
        if self.fail_sync:
            raise SinkError(f"sink {self.name}: disk full")
        self.syncs.append((self.written, self.store.get("fake")))


def test_a_deferring_sink_syncs_once_for_many_pages_and_nothing_commits_before(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    sink = SyncingSink("s", store, every=25)
    result = run(ListSource(pages(10, 10), store, tmp_path), [sink], store, tmp_path)
    assert result.error is None and store.get("fake") == {"next": 10}
    assert len(sink.syncs) <= 5  # not one per page (10 pages)
    assert sink.syncs[0][1] is None  # nothing was committed before the first sync
    assert sink.syncs[-1][0] == 100  # the end of the pass synced the rest


def test_a_failed_sync_commits_none_of_the_pages_it_covered(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    sink = SyncingSink("s", store, fail_sync=True)
    result = run(ListSource(pages(3, 5), store, tmp_path), [sink], store, tmp_path)
    assert "disk full" in (result.error or "")
    assert store.get("fake") is None and result.delivered == 0


def test_a_written_page_is_acknowledged_after_the_sync_age_without_a_flush(state_dir, tmp_path, monkeypatch):
    from forwarder.pipeline import CommitTracker, SinkWorker, _Item

    store = SqliteStore(state_dir)
    sink = SyncingSink("s", store)
    monkeypatch.setattr(SyncingSink, "SYNC_AGE", 0.01)
    worker = SinkWorker(sink, DeadLetters(tmp_path), 1000, 0.0, 2)
    worker.start()
    tracker = CommitTracker("fake", store)
    events = [AuditEvent.build(vendor="fake", product="audit", raw={"i": 1}, timestamp=1700000000)]
    seq = tracker.add({"next": 1}, [], 1, events=1)
    worker.put(_Item(tracker, seq, events))
    tracker.wait_idle()  # no flush and no more pages: only the sync age can acknowledge it
    worker.stop()
    worker.join()
    assert store.get("fake") == {"next": 1} and len(sink.syncs) == 1


def test_a_failed_send_still_commits_the_pages_written_before_it(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    sink = SyncingSink("s", store, every=1000, batch=5)  # a send per page; no sync is due before the failure
    sink.fail_on = 23  # the fifth page (of 5 records) fails
    result = run(ListSource(pages(6, 5), store, tmp_path), [sink], store, tmp_path)
    assert "target down" in (result.error or "")
    assert store.get("fake") == {"next": 4} and len(sink.syncs) == 1
