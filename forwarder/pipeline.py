"""Moves pages from sources through normalization to every sink, and commits checkpoints.

Threads: one worker per source instance and one per sink. A source worker
fetches pages, normalizes records (failures go to the dead-letter file) and puts
the events on every sink's bounded queue; a full queue blocks the source
(backpressure, bounded memory). A sink worker takes whatever is queued (up to
``batch_events``), delivers it, and acknowledges each page. The ``CommitTracker``
of a source stores a page's cursor only when every sink has acknowledged that
page and every page before it; then the page's ``on_committed`` hooks run in the
source's own thread. A page that closes a window (``Page.covers``) adds a
coverage-ledger entry (``forwarder.state.LedgerEntry``) in the same transaction
as its cursor, with the records read, delivered per sink and dead-lettered since
the previous window. Counts of pages committed inside a window (a cursor without
``covers``) ride in the stored cursor under ``ledger_open`` until the window closes.

A sink failure fails the pages it held: their cursors never commit, the source
stops its pass, and the next pass (or the next run) re-reads from the last
committed cursor. Nothing is lost; ids are deterministic, so targets that can
deduplicate do. A sink with ``outbox = true`` instead accepts into its durable
outbox (``forwarder/outbox.py``) and an ``OutboxDeliverer`` thread delivers from
there, so its outage neither stops the sources nor makes them re-read.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from forwarder import coverage, metrics
from forwarder.config import SourceConfig
from forwarder.deadletter import DeadLetters
from forwarder.errors import ForwarderError, SinkError
from forwarder.event import AuditEvent
from forwarder.logs import fields
from forwarder.sinks.base import Sink
from forwarder.sources.base import Page, Source, per_record
from forwarder.outbox import Outbox
from forwarder.state import CheckpointStore, LedgerEntry
from forwarder.timeutil import now

log = logging.getLogger("forwarder.pipeline")

_STOP = object()
_FLUSH = object()
#: Cursor key under which counts of a window still open are stored (see the module docstring).
OPEN_WINDOW = "ledger_open"


@dataclass
class PassResult:
    """What one pass of one source did."""

    source: str
    vendor: str
    events: int = 0
    dead_letters: int = 0
    pages: int = 0
    delivered: int = 0  # events of committed pages: every sink accepted them
    seconds: float = 0.0
    error: str | None = None
    cursor: dict[str, Any] | None = None


@dataclass
class _Tally:
    """Records read, dead-lettered and accepted per sink, summed over pages."""

    read: int = 0
    dead: int = 0
    delivered: dict[str, int] = field(default_factory=dict)

    def add(self, other: "_Tally") -> None:
        self.read += other.read
        self.dead += other.dead
        for sink, count in other.delivered.items():
            self.delivered[sink] = self.delivered.get(sink, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "dead": self.dead, "delivered": dict(self.delivered)}


@dataclass
class _PageState:
    acks: int
    cursor: dict[str, Any] | None
    hooks: list[Callable[[], None]]
    covers: tuple[dt.datetime, dt.datetime] | None
    vendor_count: int | None
    tally: _Tally
    events: int = 0


class CommitTracker:
    """Commits a source's cursors in page order once every sink acknowledged each page.

    With ``ledger`` (the source name), closed windows go into the coverage ledger
    with the cursor; ``sinks`` names every sink, so each entry counts all of them.
    """

    def __init__(
        self,
        key: str,
        store: CheckpointStore,
        ledger: str | None = None,
        sinks: Iterable[str] = (),
        carried: dict[str, Any] | None = None,
        on_commit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.key = key
        self.store = store
        self.ledger = ledger
        self.sinks = list(sinks)
        self.on_commit = on_commit
        self.error: BaseException | None = None
        self.committed: dict[str, Any] | None = None
        self.delivered = 0
        self._cond = threading.Condition()
        self._next = 0
        self._commit_from = 0
        self._pending: dict[int, _PageState] = {}
        self._hooks: list[Callable[[], None]] = []
        self._open = self._tally()
        if carried:
            self._open.add(_Tally(int(carried.get("read", 0)), int(carried.get("dead", 0)), dict(carried.get("delivered", {}))))

    def _tally(self, read: int = 0, dead: int = 0) -> _Tally:
        return _Tally(read, dead, {sink: 0 for sink in self.sinks})

    def add(
        self,
        cursor: dict[str, Any] | None,
        hooks: list[Callable[[], None]],
        acks: int,
        *,
        covers: tuple[dt.datetime, dt.datetime] | None = None,
        vendor_count: int | None = None,
        read: int = 0,
        dead: int = 0,
        events: int = 0,
    ) -> int:
        """Register a page that needs ``acks`` acknowledgements; return its sequence number."""
        with self._cond:
            seq = self._next
            self._next += 1
            self._pending[seq] = _PageState(acks, cursor, hooks, covers, vendor_count, self._tally(read, dead), events)
            self._advance()
            return seq

    def ack(self, seq: int, sink: str | None = None, accepted: int = 0) -> None:
        """One sink accepted page ``seq`` (``accepted`` of its events; the rest it rejected)."""
        with self._cond:
            entry = self._pending.get(seq)
            if entry is None or self.error is not None:
                return
            entry.acks -= 1
            if sink is not None:
                entry.tally.delivered[sink] = entry.tally.delivered.get(sink, 0) + accepted
            self._advance()

    def fail(self, exc: BaseException) -> None:
        """A sink could not deliver: nothing from here on commits."""
        with self._cond:
            if self.error is None:
                self.error = exc
            self._cond.notify_all()

    def _advance(self) -> None:
        cursor = None
        entries: list[LedgerEntry] = []
        open_at_cursor = self._tally()
        while self.error is None:
            entry = self._pending.get(self._commit_from)
            if entry is None or entry.acks > 0:
                break
            del self._pending[self._commit_from]
            self._commit_from += 1
            self._open.add(entry.tally)
            if entry.cursor is not None:
                cursor = entry.cursor
                if entry.covers is not None and self.ledger is not None:
                    o = self._open
                    entries.append(LedgerEntry(self.ledger, *entry.covers, o.read, o.delivered, o.dead, entry.vendor_count))
                    self._open = self._tally()
                open_at_cursor = _Tally(self._open.read, self._open.dead, dict(self._open.delivered))
            self._hooks.extend(entry.hooks)
            self.delivered += entry.events
        if cursor is not None:
            stored = cursor
            if self.ledger is not None and (open_at_cursor.read or open_at_cursor.dead):
                stored = {**cursor, OPEN_WINDOW: open_at_cursor.as_dict()}
            try:
                self.store.commit(self.key, stored, entries)
                self.committed = cursor
                if self.on_commit is not None:
                    self.on_commit(cursor)
            except Exception as exc:  # a state failure stops the source like a sink failure
                self.error = exc
        self._cond.notify_all()

    def take_hooks(self) -> list[Callable[[], None]]:
        """Hooks of committed pages, to run in the source's thread."""
        with self._cond:
            hooks, self._hooks = self._hooks, []
            return hooks

    def wait_idle(self) -> None:
        """Block until every page is committed or the tracker failed."""
        with self._cond:
            while self.error is None and self._commit_from < self._next:
                self._cond.wait(0.2)


@dataclass
class _Item:
    tracker: CommitTracker
    seq: int
    events: list[AuditEvent]


class SinkWorker(threading.Thread):
    """Delivers queued pages to one sink, in order."""

    def __init__(
        self,
        sink: Sink,
        dead_letters: DeadLetters,
        batch_events: int,
        batch_age: float,
        queue_pages: int,
        outbox: Outbox | None = None,
    ) -> None:
        super().__init__(name=f"sink-{sink.name}", daemon=True)
        self.sink = sink
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.batch_events = batch_events
        self.batch_age = batch_age
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_pages)
        #: (tracker, page, accepted) written to the sink but not yet synced, oldest first.
        self._unsynced: list[tuple[CommitTracker, int, int]] = []
        self._unsynced_since = 0.0
        self._sync_due = False

    def put(self, item: _Item) -> bool:
        """Queue a page, waiting while the queue is full; False if the pass has failed."""
        while True:
            if item.tracker.error is not None:
                return False
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue

    def stop(self) -> None:
        """Finish what is queued, then end."""
        self.queue.put(_STOP)

    def flush(self) -> None:
        """Ask for what was written to be made durable now (a pass has no more pages)."""
        self.queue.put(_FLUSH)

    def run(self) -> None:
        stopping = False
        while not stopping:
            first = self._next()
            if first is _STOP:
                break
            if first is _FLUSH:
                continue
            batch = [first]
            count = len(first.events)
            deadline = time.monotonic() + self.batch_age
            while count < self.batch_events:
                try:
                    remaining = deadline - time.monotonic()
                    nxt = self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                if nxt is _FLUSH:
                    self._sync_due = True
                    break
                batch.append(nxt)
                count += len(nxt.events)
            self._deliver(batch)
        self._sync()

    def _next(self) -> Any:
        """The next queued item; while written pages wait for the sink's ``sync``, sync when
        the sink asks for it, on a flush, or once the oldest of them is ``SYNC_AGE`` old."""
        while self._unsynced:
            if self._sync_due or self.sink.sync_due():
                self._sync()
                break
            try:
                item = self.queue.get(timeout=max(0.0, self._unsynced_since + self.sink.SYNC_AGE - time.monotonic()))
            except queue.Empty:
                self._sync()
                break
            if item is _FLUSH:
                self._sync()
            return item
        return self.queue.get()

    def _deliver(self, batch: list[_Item]) -> None:
        live = [item for item in batch if item.tracker.error is None]
        if not live:
            return
        events = [e for item in live for e in item.events]
        rejected_events: list[AuditEvent] = []
        try:
            if self.outbox is not None:
                self.outbox.put(events)  # durably held: counts as accepted; the deliverer sends it
            else:
                rejected_events = deliver(self.sink, events, self.dead_letters)
        except Exception as exc:
            self._sync()  # the pages written before this batch are good: keep them
            self._fail([item.tracker for item in live], exc)
            return
        rejected = {id(event) for event in rejected_events} if self.outbox is None else set()
        if not self._unsynced:
            self._unsynced_since = time.monotonic()
        for item in live:
            accepted = sum(1 for event in item.events if id(event) not in rejected)
            self._unsynced.append((item.tracker, item.seq, accepted))
        if self.outbox is not None or self._sync_due or self.sink.sync_due():
            self._sync()

    def _sync(self) -> None:
        """Make the written pages durable, then acknowledge them (or fail them if that fails)."""
        self._sync_due = False
        if not self._unsynced:
            return
        waiting, self._unsynced = self._unsynced, []
        try:
            if self.outbox is None:
                self.sink.sync()
        except Exception as exc:
            self._fail([tracker for tracker, _, _ in waiting], exc)
            return
        for tracker, seq, accepted in waiting:
            tracker.ack(seq, self.sink.name, accepted)

    def _fail(self, trackers: list[CommitTracker], exc: Exception) -> None:
        """A failed delivery fails every page it held; a bug in a sink still gets a readable line."""
        if not isinstance(exc, ForwarderError):
            log.debug("sink %s crashed", self.sink.name, exc_info=exc)
            exc = SinkError(f"sink {self.sink.name}: unexpected {type(exc).__name__}: {exc}")
        metrics.delivery_failed(self.sink.name, str(exc))
        for tracker in trackers:
            tracker.fail(exc)


def deliver(sink: Sink, events: list[AuditEvent], dead_letters: DeadLetters) -> list[AuditEvent]:
    """Send events to a sink and dead-letter what it rejects (raises when delivery fails); return the rejected."""
    rejected = sink.send(events)
    metrics.delivered(sink.name, len(events), len(rejected))
    if rejected:
        dead_letters.write_many(f"sink:{sink.name}", [(r.reason, r.event.to_dict()) for r in rejected])
    return [r.event for r in rejected]


class OutboxDeliverer(threading.Thread):
    """Sends a sink's outbox segments in order; retries a failing target with growing pauses."""

    def __init__(self, sink: Sink, outbox: Outbox, dead_letters: DeadLetters, max_pause: float = 60.0) -> None:
        super().__init__(name=f"outbox-{sink.name}", daemon=True)
        self.sink = sink
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.max_pause = max_pause
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        pause = 1.0
        while True:
            segments = self.outbox.segments()
            if not segments:
                if self.stopping.is_set():
                    return
                self.outbox.wait_for_work(0.5)
                continue
            try:
                self._send(segments[0])
                pause, self.error = 1.0, None
            except ForwarderError as exc:
                self.error = str(exc)
                metrics.delivery_failed(self.sink.name, self.error)
                if self.stopping.is_set():
                    return  # the rest waits on disk for the next run
                log.warning("%s; %d outbox batches wait, next try in %.0fs", exc, len(segments), pause,
                            extra=fields(sink=self.sink.name, error=str(exc)))
                self.stopping.wait(pause)
                pause = min(self.max_pause, pause * 2)

    def _send(self, segment: Any) -> None:
        try:
            events = self.outbox.load(segment)
        except (ValueError, KeyError, TypeError) as exc:
            bad = segment.with_suffix(".unreadable")
            segment.replace(bad)
            log.error("sink %s: outbox segment %s cannot be read (%s); set aside as %s", self.sink.name, segment.name, exc, bad.name)
            return
        try:
            deliver(self.sink, events, self.dead_letters)
            self.sink.sync()  # durable at the target before the segment goes
        except ForwarderError:
            raise
        except Exception as exc:  # a bug in a sink: keep the segment, say so on one line
            log.debug("sink %s crashed", self.sink.name, exc_info=True)
            raise SinkError(f"sink {self.sink.name}: unexpected {type(exc).__name__}: {exc}") from None
        self.outbox.done(segment)


class Pipeline:
    """Runs source passes into a set of sinks."""

    def __init__(
        self,
        sinks: list[Sink],
        store: CheckpointStore,
        dead_letters: DeadLetters,
        *,
        queue_pages: int = 2,
        outbox_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.workers = []
        self.deliverers: list[OutboxDeliverer] = []
        for sink in sinks:
            outbox = None
            if sink.config.outbox and outbox_dir is not None:
                outbox = Outbox(outbox_dir / sink.name, sink.config.outbox_max_bytes)
                self.deliverers.append(OutboxDeliverer(sink, outbox, dead_letters))
            worker = SinkWorker(sink, dead_letters, sink.config.batch_events, sink.config.batch_age, queue_pages, outbox)
            self.workers.append(worker)
            metrics.watch_sink(sink.name, worker.queue.qsize, outbox)
        self._started = False
        self._start_lock = threading.Lock()
        self._ledgers: set[str] = set()  # sources whose coverage ledger /metrics reports
        metrics.watch_coverage(self._coverage)

    def _coverage(self) -> dict[str, dict[str, float | None]]:
        return coverage.coverage_metrics(self.store, sorted(self._ledgers))

    def start(self) -> None:
        """Start the sink workers (once, even when several source threads begin a pass at the same time)."""
        with self._start_lock:
            if not self._started:
                for thread in [*self.workers, *self.deliverers]:
                    thread.start()
                self._started = True

    def close(self) -> list[tuple[str, str]]:
        """Drain and stop the sink workers, then close the sinks.

        Returns (sink name, problem) for each sink whose outbox still holds batches
        (its target failed); they are delivered first by the next run.
        """
        metrics.unwatch_coverage(self._coverage)
        undelivered: list[tuple[str, str]] = []
        if self._started:
            for worker in self.workers:
                worker.stop()
            for worker in self.workers:
                worker.join()
            for deliverer in self.deliverers:
                deliverer.stopping.set()
            for deliverer in self.deliverers:
                deliverer.join()
                left = len(deliverer.outbox.segments())
                if left:
                    undelivered.append((deliverer.sink.name, f"{deliverer.error}; {left} batches kept in the outbox for the next run"))
            self._started = False
        for worker in self.workers:
            try:
                worker.sink.close()
            except ForwarderError as exc:
                log.error("%s", exc)
        return undelivered

    def run_pass(
        self,
        source: Source,
        start: dt.datetime,
        end: dt.datetime,
        *,
        key: str | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[Page, int], None] | None = None,
        guard: Callable[[], None] | None = None,
    ) -> PassResult:
        """One pass of ``source`` over ``[start, end)`` from its stored cursor; never raises ForwarderError.

        ``guard`` runs before each page is asked for (a replica renews its lease there); what it raises ends the pass.
        """
        self.start()
        live = key is None
        key = key or source.name
        result = PassResult(source.name, source.VENDOR)
        began = time.monotonic()
        on_commit = (lambda c: metrics.cursor_committed(source.name, source.VENDOR, c)) if live else None
        dl_origin = f"source:{source.name}"
        tracker = CommitTracker(key, self.store)
        try:
            cursor = self.store.get(key)
            carried = cursor.get(OPEN_WINDOW) if cursor else None
            if cursor is not None and carried is not None:
                cursor = {k: v for k, v in cursor.items() if k != OPEN_WINDOW}
            ledger = source.name if source.LEDGER else None
            tracker = CommitTracker(key, self.store, ledger, [w.sink.name for w in self.workers], carried, on_commit)
            if live and ledger is not None:
                self._ledgers.add(source.name)
                if cursor is None:
                    coverage.note_start(self.store, source.name, start)
            if on_commit is not None:
                on_commit(cursor)
            pages = source.fetch(cursor, start, end)
            try:
                for page in _guarded(pages, guard):
                    events, bad = normalize_records(source, page.records, page.rejected)
                    metrics.page_read(source.name, source.VENDOR, len(page.records) + len(page.rejected), len(bad))
                    if bad:
                        self.dead_letters.write_many(dl_origin, bad)
                        result.dead_letters += len(bad)
                    acks = len(self.workers) if events else 0
                    seq = tracker.add(page.cursor, page.on_committed, acks, covers=page.covers,
                                      vendor_count=page.vendor_count, read=len(page.records) + len(page.rejected), dead=len(bad), events=len(events))
                    if events:
                        for worker in self.workers:
                            if not worker.put(_Item(tracker, seq, events)):
                                break
                    result.pages += 1
                    result.events += len(events)
                    _run_hooks(tracker.take_hooks())
                    if progress is not None:
                        progress(page, len(events))
                    if tracker.error is not None or (stop is not None and stop.is_set()):
                        break
            finally:
                close = getattr(pages, "close", None)
                if close is not None:
                    close()
                for worker in self.workers:
                    worker.flush()
            tracker.wait_idle()
            _run_hooks(tracker.take_hooks())
            if tracker.error is not None:
                raise tracker.error
        except ForwarderError as exc:
            result.error = str(exc)
        except Exception as exc:  # a bug in a source: report it on one line, keep the checkpoint
            log.debug("source %s crashed", source.name, exc_info=True)
            result.error = f"source {source.name}: unexpected {type(exc).__name__}: {exc}"
        if result.error is not None:
            tracker.wait_idle()  # pages queued before the failure still get delivered and committed
        result.cursor = tracker.committed
        result.delivered = tracker.delivered
        result.seconds = time.monotonic() - began
        metrics.pass_ended(source.name, source.VENDOR, result.seconds, result.error)
        return result


def normalize_records(
    source: Source, records: Iterable[dict[str, Any]], rejected: Iterable[tuple[str, Any]] = ()
) -> tuple[list[AuditEvent], list[tuple[str, Any]]]:
    """Normalize records; return the events and (reason, record) for those that failed,
    after the ``rejected`` ones the source already set aside while reading the page.

    Every event of a page gets the same ``ingested_at`` (when the page was read),
    which is also what lets its formatted text be computed once.
    """
    events: list[AuditEvent] = []
    bad: list[tuple[str, Any]] = list(rejected)
    read_at = now()
    for _, event in per_record(records, source.normalize, bad, "cannot normalize"):
        event.ingested_at = read_at
        events.append(event)
    return events, bad


def _guarded(pages: Iterable[Page], guard: Callable[[], None] | None) -> Iterator[Page]:
    """``pages``, calling ``guard`` before asking for each one."""
    if guard is None:
        yield from pages
        return
    it = iter(pages)
    while True:
        guard()
        try:
            page = next(it)
        except StopIteration:
            return
        yield page


def _run_hooks(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        hook()


def window_for(config: SourceConfig, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The default range of a scheduled pass: ``[now - lookback, now - lag)``."""
    end = now - dt.timedelta(seconds=config.lag)
    return end - dt.timedelta(seconds=config.lookback), end


def result_fields(result: PassResult) -> dict[str, Any]:
    """The structured log fields of a pass (see ``forwarder.logs``)."""
    return fields(
        source=result.source, vendor=result.vendor, events=result.events, delivered=result.delivered,
        dead_letters=result.dead_letters,
        pages=result.pages, cursor=result.cursor, duration=round(result.seconds, 3), error=result.error,
    )


def describe(result: PassResult) -> str:
    """One log line for a pass."""
    where = ""
    if result.cursor:
        until = result.cursor.get("until")
        where = f", committed up to {until}" if until else ", committed"
    status = f" FAILED: {result.error}" if result.error else ""
    return (
        f"source {result.source}: {count_events(result)}, {result.dead_letters} dead-lettered, "
        f"{result.pages} pages in {result.seconds:.1f}s{where}{status}"
    )


def count_events(result: PassResult) -> str:
    """``N events``, or for a failed pass ``D of N events delivered``: what was read is not what arrived."""
    if result.error and result.delivered != result.events:
        return f"{result.delivered} of {result.events} events delivered"
    return f"{result.events} events"

