"""The Source interface every vendor module implements.

A source turns a cursor and a time range into ``Page``s of raw vendor records,
and maps one raw record to an ``AuditEvent``. It knows nothing about sinks: the
pipeline stores ``Page.cursor`` only after every sink accepted the page's
events, then runs ``Page.on_committed`` (e.g. delete a spooled body or a vendor
report) from the source's own thread.
"""

from __future__ import annotations

import datetime as dt
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, TypeVar

from forwarder.config import SourceConfig
from forwarder.errors import HttpError, SourceError, StateError, UnreadableRecord
from forwarder.event import AuditEvent
from forwarder.http import warn_unverified
from forwarder.options import Option
from forwarder.state import CheckpointStore
from forwarder.timeutil import format_time, parse_time


@dataclass
class Page:
    """Raw records plus the cursor that is safe to store once they are delivered.

    ``position`` is how far in time the source has read (for progress bars);
    ``on_committed`` runs after the cursor is stored. ``covers`` is set on the
    page (with a cursor) that completes a window: once it is committed, every
    record of ``[start, end)`` has been read, by this page and the pages since
    the previous window; it becomes a coverage-ledger entry with
    ``vendor_count``, the vendor's own count for that window when it gives one.
    ``rejected`` are (reason, record) the source set aside while reading (see
    ``per_record``): they are dead-lettered, and the cursor moves past them like
    past the others.
    """

    records: list[dict[str, Any]]
    cursor: dict[str, Any] | None
    position: dt.datetime | None = None
    on_committed: list[Callable[[], None]] = field(default_factory=list)
    covers: tuple[dt.datetime, dt.datetime] | None = None
    vendor_count: int | None = None
    rejected: list[tuple[str, Any]] = field(default_factory=list)


class Source(ABC):
    """Base class of vendor sources."""

    TYPE: ClassVar[str]
    VENDOR: ClassVar[str]
    PRODUCT: ClassVar[str] = "audit"
    OPTIONS: ClassVar[dict[str, Option]] = {}
    #: False for sources that cannot read an arbitrary past range (e.g. a destructive queue).
    SUPPORTS_RANGE: ClassVar[bool] = True
    #: True for sources whose pages close time windows (``Page.covers``): the pipeline keeps their coverage ledger.
    LEDGER: ClassVar[bool] = False
    #: Column names of ``export --format csv|xlsx``; ``export_row`` fills them.
    EXPORT_COLUMNS: ClassVar[tuple[str, ...]] = (
        "timestamp", "vendor", "tenant", "actor", "actor_email", "actor_type", "action",
        "outcome", "category", "source_ip", "target_type", "target", "region", "message", "id",
    )

    def __init__(self, config: SourceConfig, store: CheckpointStore, work_dir: Path) -> None:
        self.config = config
        self.name = config.name
        self.options = config.options
        self.store = store
        self.work_dir = Path(work_dir) / "sources" / config.name
        #: Set when the daemon is stopping; long waits use ``pause`` so they end early.
        self.stopping = threading.Event()
        warn_unverified(f"source {self.name}", config.http)

    def pause(self, seconds: float) -> None:
        """Wait between polls of a vendor job; raise ``SourceError`` if the run is stopping meanwhile."""
        if self.stopping.wait(seconds):
            raise SourceError(f"source {self.name}: stopped while waiting on the vendor; the next run resumes from the checkpoint")

    @abstractmethod
    def fetch(self, cursor: dict[str, Any] | None, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        """Yield pages of records after ``cursor`` (or from ``start`` without one) up to ``end``."""

    @abstractmethod
    def normalize(self, record: dict[str, Any]) -> AuditEvent:
        """Map one raw record; raise ``RecordError`` (or ValueError/KeyError/TypeError) if it cannot be."""

    def check(self) -> str:
        """Verify credentials and reachability without consuming anything; return a short summary."""
        raise NotImplementedError(f"{self.TYPE}: check is not implemented")

    def close(self) -> None:
        """Release network resources."""

    def export_row(self, event: AuditEvent) -> dict[str, Any]:
        """One spreadsheet row for ``event`` (keys are ``EXPORT_COLUMNS``)."""
        target = event.target.name or event.target.id
        return {
            "timestamp": format_time(event.timestamp),
            "vendor": event.vendor,
            "tenant": event.tenant_name or event.tenant_id,
            "actor": event.actor.name or event.actor.id,
            "actor_email": event.actor.email,
            "actor_type": event.actor.type,
            "action": event.action,
            "outcome": event.outcome,
            "category": event.category,
            "source_ip": event.source.ip,
            "target_type": event.target.type,
            "target": target,
            "region": event.region,
            "message": event.message,
            "id": event.id,
        }


T = TypeVar("T")
#: Longest reason text kept for a set-aside record.
REASON_CHARS = 500


def per_record(
    records: Iterable[Any], step: Callable[[Any], T], rejected: list[tuple[str, Any]], what: str
) -> Iterator[tuple[Any, T]]:
    """``(record, step(record))`` for each record; a record whose ``step`` fails goes to
    ``rejected`` with the reason instead, and the others go on.

    The one safety net for work on single records, in the sources' fetch loops (sorting,
    placing a record in its window, computing its id) and in normalization alike: whatever
    one record holds, it cannot stop the page, the window or the source. A failed request
    (``HttpError``) or state write is no record's fault: it stops the pass as usual.
    """
    for record in records:
        if isinstance(record, UnreadableRecord):  # a stream's record that was not even decodable
            rejected.append((str(record), record.text))
            continue
        try:
            result = step(record)
        except (HttpError, StateError):
            raise
        except Exception as exc:  # anything one record can provoke
            rejected.append((f"{what}: {type(exc).__name__}: {exc}"[:REASON_CHARS], record))
            continue
        yield record, result


def resume_point(cursor: dict[str, Any] | None, start: dt.datetime, key: str = "until") -> dt.datetime:
    """Where a time-window source continues: the cursor's ``key`` time if present, else ``start``."""
    if cursor and cursor.get(key):
        return parse_time(cursor[key])
    return start


def time_windows(start: dt.datetime, end: dt.datetime, size: float) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Consecutive half-open windows ``[a, b)`` of at most ``size`` seconds covering ``[start, end)``."""
    step = dt.timedelta(seconds=size)
    a = start
    while a < end:
        b = min(a + step, end)
        yield a, b
        a = b
