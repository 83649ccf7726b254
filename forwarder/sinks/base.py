"""The Sink interface every target implements.

``send`` returns only when the target has accepted every event it does not
return as rejected; it raises ``SinkError`` (or ``HttpError``) when it cannot
deliver, and then nothing in the batch counts as delivered. Rejected events
(the target refused the data itself, e.g. a mapping error) are dead-lettered by
the pipeline with the reason the sink gives.

A sink may write sooner than it makes durable (the file sink: one fsync for many
pages). Then ``send`` only writes, and nothing it wrote counts as accepted until
``sync`` returns; the pipeline calls ``sync`` when ``sync_due`` says so, when a
pass has no more pages, and at the latest ``SYNC_AGE`` seconds after the first
unsynced ``send``. Sinks whose ``send`` is durable by itself keep the defaults.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from forwarder.config import SinkConfig
from forwarder.event import AuditEvent
from forwarder.http import warn_unverified
from forwarder.options import Option


@dataclass
class Rejected:
    """An event the target refused as bad data, with the target's reason."""

    event: AuditEvent
    reason: str


class Sink(ABC):
    """Base class of sinks. Called from one pipeline thread only."""

    TYPE: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Option]] = {}
    #: Longest a written event waits for ``sync`` (sinks that defer durability).
    SYNC_AGE: ClassVar[float] = 1.0

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.name = config.name
        self.options = config.options
        warn_unverified(f"sink {self.name}", config.http)

    @abstractmethod
    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        """Deliver ``events``; return the ones the target rejected as bad data."""

    def sync_due(self) -> bool:
        """Whether what ``send`` wrote should be made durable now (always, unless the sink defers)."""
        return True

    def sync(self) -> None:
        """Make everything ``send`` wrote durable; raise ``SinkError`` if it cannot be."""

    def check(self) -> str:
        """Verify the target is reachable and the credentials work, writing nothing."""
        return "ok"

    def close(self) -> None:
        """Flush and release resources."""
