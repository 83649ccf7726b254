"""AuditEvent: the one vendor-neutral shape between sources and sinks.

Sources build events with ``AuditEvent.build`` (which also fixes the id);
sinks read the fields and never look at ``raw`` except to ship it unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from forwarder import jsoncodec
from forwarder.timeutil import iso, now, parse_time

OUTCOMES = ("success", "failure", "unknown")
CATEGORIES = (
    "authentication",
    "iam",
    "configuration",
    "file",
    "network",
    "api",
    "session",
    "host",
    "database",
    "web",
)


@dataclass(slots=True)
class Actor:
    """Who did it."""

    id: str | None = None
    name: str | None = None
    email: str | None = None
    type: str | None = None


@dataclass(slots=True)
class Endpoint:
    """Where the request came from."""

    ip: str | None = None
    port: int | None = None


@dataclass(slots=True)
class Target:
    """What was acted on."""

    type: str | None = None
    id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class AuditEvent:
    """A normalized audit record. ``raw`` is the vendor record, untouched."""

    id: str
    vendor: str
    product: str
    timestamp: dt.datetime
    raw: dict[str, Any]
    tenant_id: str | None = None
    tenant_name: str | None = None
    #: When the forwarder read the record: the pipeline stamps each page's events with one time
    #: (``normalize_records``), so an event is not built with the clock read for it. Renderers
    #: read it through ``ingested()``.
    ingested_at: dt.datetime | None = None
    action: str | None = None
    outcome: str = "unknown"
    category: str | None = None
    actor: Actor = field(default_factory=Actor)
    source: Endpoint = field(default_factory=Endpoint)
    target: Target = field(default_factory=Target)
    region: str | None = None
    url: str | None = None
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        vendor: str,
        product: str,
        raw: dict[str, Any],
        timestamp: object,
        vendor_id: str | None = None,
        tenant_id: str | None = None,
        tenant_name: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        category: str | None = None,
        actor: Actor | None = None,
        source: Endpoint | None = None,
        target: Target | None = None,
        region: str | None = None,
        url: str | None = None,
        message: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> "AuditEvent":
        """Create an event, parsing the timestamp and deriving the deterministic id.

        Called once per record: the fields go to the constructor by position, which is
        the cheapest way Python has to fill a slotted dataclass.
        """
        outcome = outcome or "unknown"
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        return cls(
            event_id(vendor_id, tenant_id, raw), vendor, product, parse_time(timestamp), raw, tenant_id, tenant_name, None, action,
            outcome, category, actor or Actor(), source or Endpoint(), target or Target(), region, url, message,
            {} if details is None else details,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuditEvent":
        """Rebuild an event from ``to_dict`` output (the outbox stores events that way)."""
        return cls(
            id=data["id"],
            vendor=data["vendor"],
            product=data["product"],
            timestamp=parse_time(data["timestamp"]),
            raw=data["raw"],
            tenant_id=data.get("tenant_id"),
            tenant_name=data.get("tenant_name"),
            ingested_at=parse_time(data["ingested_at"]),
            action=data.get("action"),
            outcome=data.get("outcome") or "unknown",
            category=data.get("category"),
            actor=Actor(**data.get("actor") or {}),
            source=Endpoint(**data.get("source") or {}),
            target=Target(**data.get("target") or {}),
            region=data.get("region"),
            url=data.get("url"),
            message=data.get("message"),
            details=data.get("details") or {},
        )

    def ingested(self) -> dt.datetime:
        """``ingested_at``; an event that no pipeline stamped (a test, a benchmark) is stamped
        now, once, so that every rendering of it says the same time."""
        if self.ingested_at is None:
            self.ingested_at = now()
        return self.ingested_at

    @property
    def dataset(self) -> str:
        """``<vendor>.<product>`` in lower snake case, e.g. ``crusoe.audit``."""
        return f"{self.vendor}.{self.product}"

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready data (times as RFC 3339 strings)."""
        return {
            "id": self.id,
            "vendor": self.vendor,
            "product": self.product,
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "timestamp": iso(self.timestamp, "microseconds"),
            "ingested_at": iso(self.ingested(), "microseconds"),
            "action": self.action,
            "outcome": self.outcome,
            "category": self.category,
            "actor": {"id": self.actor.id, "name": self.actor.name, "email": self.actor.email, "type": self.actor.type},
            "source": {"ip": self.source.ip, "port": self.source.port},
            "target": {"type": self.target.type, "id": self.target.id, "name": self.target.name},
            "region": self.region,
            "url": self.url,
            "message": self.message,
            "details": self.details,
            "raw": self.raw,
        }


def event_id(vendor_id: str | None, tenant_id: str | None, raw: dict[str, Any]) -> str:
    """The vendor's id when it has one, else SHA-256 of tenant + canonical JSON of the record."""
    if vendor_id not in (None, ""):
        return str(vendor_id)
    return content_hash(tenant_id or "", raw)


def content_hash(*parts: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of ``parts`` (the one id hash)."""
    return hashlib.sha256(jsoncodec.canonical(list(parts))).hexdigest()
