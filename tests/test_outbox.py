"""The per-sink outbox: a target outage neither stops the sources nor loses or re-reads anything."""

from forwarder import jsoncodec
from forwarder.config import SinkConfig
from forwarder.deadletter import DeadLetters
from forwarder.event import Actor, AuditEvent, Endpoint, Target
from forwarder.errors import SinkError
from forwarder.http import HttpSettings
from forwarder.outbox import Outbox
from forwarder.pipeline import Pipeline
from forwarder.sinks.base import Rejected, Sink
from forwarder.state import SqliteStore
from forwarder.timeutil import now

from tests.test_pipeline import ListSource, pages


class Flaky(Sink):
    TYPE = "flaky"

    def __init__(self, up=True, reject=()):
        super().__init__(SinkConfig("target", "flaky", 2000, 0.0, HttpSettings(), outbox=True))
        self.up = up
        self.reject = set(reject)
        self.got = []

    def send(self, events):
        if not self.up:
            raise SinkError("sink target: connection refused")
        self.got.extend(e.raw["i"] for e in events if e.raw["i"] not in self.reject)
        return [Rejected(e, "bad data") for e in events if e.raw["i"] in self.reject]


def run(source, sink, store, state_dir):
    pipe = Pipeline([sink], store, DeadLetters(state_dir), outbox_dir=state_dir / "outbox")
    result = pipe.run_pass(source, now(), now())
    return result, pipe.close()


def test_event_round_trips_through_to_dict():
    e = AuditEvent.build(vendor="v", product="audit", raw={"a": [1, {"b": None}]}, timestamp="2024-01-01T00:00:00.123456Z",
                         tenant_id="t", action="login", outcome="failure", category="authentication",
                         actor=Actor("1", "ann", "a@x", "user"), source=Endpoint("10.0.0.1", 443),
                         target=Target("vm", "9", "db"), region="eu", url="https://x", message="m", details={"k": 1})
    assert AuditEvent.from_dict(jsoncodec.loads(jsoncodec.dumps(e.to_dict()))) == e


def test_a_down_target_does_not_hold_the_checkpoint_and_the_next_run_delivers(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    sink = Flaky(up=False)
    result, undelivered = run(ListSource(pages(3, 4), store, tmp_path), sink, store, state_dir)
    assert result.error is None and store.get("fake") == {"next": 3}  # the sources moved on
    assert sink.got == [] and undelivered and undelivered[0][0] == "target"
    assert "connection refused" in undelivered[0][1] and "kept in the outbox" in undelivered[0][1]
    assert list((state_dir / "outbox" / "target").glob("*.ndjson"))

    sink.up = True  # the next run: no vendor re-read (the checkpoint is at the end), the outbox drains first
    source = ListSource(pages(3, 4), store, tmp_path)
    result, undelivered = run(source, sink, store, state_dir)
    assert source.fetched == 0 and undelivered == []
    assert sorted(sink.got) == list(range(12))
    assert not list((state_dir / "outbox" / "target").glob("*.ndjson"))


def test_rejected_events_from_the_outbox_are_dead_lettered(state_dir, tmp_path):
    store = SqliteStore(state_dir)
    sink = Flaky(reject={2})
    run(ListSource(pages(1, 4), store, tmp_path), sink, store, state_dir)
    assert sorted(sink.got) == [0, 1, 3]
    letters = [jsoncodec.loads(l) for l in (state_dir / "deadletter.ndjson").read_bytes().splitlines()]
    assert [(l["origin"], l["reason"], l["record"]["raw"]["i"]) for l in letters] == [("sink:target", "bad data", 2)]


def test_a_torn_segment_write_is_dropped_and_numbering_continues(tmp_path):
    box = Outbox(tmp_path, 1 << 20)
    e = AuditEvent.build(vendor="v", product="audit", raw={"i": 1}, timestamp=0)
    box.put([e])
    (tmp_path / "000000000001.part").write_bytes(b'{"id":')  # a crash mid-write: never acknowledged
    again = Outbox(tmp_path, 1 << 20)
    again.put([e])
    assert [p.name for p in again.segments()] == ["000000000000.ndjson", "000000000001.ndjson"]
    assert not list(tmp_path.glob("*.part"))
    assert [x.id for x in again.load(again.segments()[1])] == [e.id]


def test_an_unreadable_segment_is_set_aside_not_retried_forever(state_dir, tmp_path):
    box_dir = state_dir / "outbox" / "target"
    box_dir.mkdir(parents=True)
    (box_dir / "000000000000.ndjson").write_bytes(b"not json\n")
    store = SqliteStore(state_dir)
    sink = Flaky()
    result, undelivered = run(ListSource(pages(1, 2), store, tmp_path), sink, store, state_dir)
    assert undelivered == [] and sorted(sink.got) == [0, 1]
    assert (box_dir / "000000000000.unreadable").exists()


def test_a_segment_is_removed_only_after_a_deferring_sink_synced_it(state_dir, tmp_path):
    class Deferring(Flaky):
        """Writes on send, durable on sync (the file sink); a sync that fails keeps the segment."""

        def __init__(self):
            super().__init__()
            self.synced, self.fail_sync = [], True

        def sync(self):
            if self.fail_sync:
                raise SinkError("sink target: fsync failed")
            self.synced = list(self.got)

    store = SqliteStore(state_dir)
    sink = Deferring()
    result, undelivered = run(ListSource(pages(2, 3), store, tmp_path), sink, store, state_dir)
    assert result.error is None and "fsync failed" in undelivered[0][1]
    assert list((state_dir / "outbox" / "target").glob("*.ndjson"))  # written, not durable: kept
    sink.fail_sync = False
    result, undelivered = run(ListSource(pages(2, 3), store, tmp_path), sink, store, state_dir)
    assert undelivered == [] and sorted(set(sink.synced)) == list(range(6))
    assert not list((state_dir / "outbox" / "target").glob("*.ndjson"))
