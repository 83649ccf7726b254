"""AuditEvent → Elastic Common Schema document: the only ECS mapping.

Used by the file sink (NDJSON), the Elasticsearch sink and the Logstash sink, so
every Elastic-side consumer sees the same document. Data stream names are
``logs-forwarder_<vendor>.<product>-<namespace>``: the ``forwarder_`` prefix keeps
our datasets apart from Elastic's own integrations (which ship e.g.
``carbon_black_cloud.audit`` with its own ingest pipeline).

| AuditEvent            | ECS                                              |
|-----------------------|--------------------------------------------------|
| timestamp             | @timestamp                                       |
| ingested_at           | event.created                                    |
| id                    | event.id                                         |
| action                | event.action                                     |
| outcome               | event.outcome                                    |
| category (+ action)   | event.category / event.type (ECS allowed values) |
| vendor / product      | event.provider, event.module, event.dataset      |
| raw                   | event.original (JSON text)                       |
| actor.*               | user.id / user.name / user.email, + related.user |
| source.ip / port      | source.ip / source.port, + related.ip            |
| tenant_id / name      | organization.id / organization.name              |
| vendor, region        | cloud.provider, cloud.region                     |
| url                   | url.original                                     |
| message               | message                                          |
| target.*, actor.type, details | <vendor>.<product>.* (vendor namespace)  |
"""

from __future__ import annotations

from typing import Any

from forwarder import jsoncodec
from forwarder.event import AuditEvent

ECS_VERSION = "9.4.0"
DATASET_PREFIX = "forwarder_"

# AuditEvent.category → ECS event.category, and the event.type used when the action says nothing more.
_CATEGORY: dict[str, tuple[str, str]] = {
    "authentication": ("authentication", "info"),
    "session": ("session", "info"),
    "iam": ("iam", "info"),
    "configuration": ("configuration", "info"),
    "file": ("file", "info"),
    "network": ("network", "info"),
    "api": ("api", "info"),
    "host": ("host", "info"),
    "database": ("database", "info"),
    "web": ("web", "info"),
}
# Allowed event.type values per ECS category (ECS 9.4 schemas/event.yml).
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "api": frozenset({"access", "admin", "allowed", "change", "creation", "deletion", "denied", "end", "info", "start", "user"}),
    "authentication": frozenset({"start", "end", "info"}),
    "configuration": frozenset({"access", "change", "creation", "deletion", "info"}),
    "database": frozenset({"access", "change", "info", "error"}),
    "file": frozenset({"access", "change", "creation", "deletion", "info"}),
    "host": frozenset({"access", "change", "end", "info", "start"}),
    "iam": frozenset({"admin", "change", "creation", "deletion", "group", "info", "user"}),
    "network": frozenset({"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"}),
    "session": frozenset({"start", "end", "info"}),
    "web": frozenset({"access", "error", "info"}),
}
# Words in an action that imply an event.type; first match wins.
_ACTION_TYPES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("login", "logon", "signin", "sign_in", "authenticate"), "start"),
    (("logout", "logoff", "signout", "sign_out"), "end"),
    (("create", "add", "upload", "insert", "provision", "invite", "generate"), "creation"),
    (("delete", "remove", "destroy", "deprovision", "revoke"), "deletion"),
    (("update", "modify", "change", "edit", "set", "patch", "assign", "enable", "disable", "rename", "move"), "change"),
    (("download", "read", "view", "get", "list", "access", "export"), "access"),
)


def dataset(event: AuditEvent) -> str:
    """The ``data_stream.dataset`` (and ``event.dataset``) of an event."""
    return f"{DATASET_PREFIX}{event.vendor}.{event.product}"


def event_type(category: str, action: str | None) -> str:
    """An ECS ``event.type`` allowed for ``category``, guessed from the action's verb."""
    allowed = ALLOWED_TYPES[category]
    words = (action or "").lower()
    for needles, etype in _ACTION_TYPES:
        if any(n in words for n in needles) and etype in allowed:
            return etype
    return _CATEGORY[category][1]


def to_ecs(event: AuditEvent, namespace: str = "default") -> dict[str, Any]:
    """The ECS document for ``event`` (ready for ``jsoncodec.dumps``)."""
    category = event.category if event.category in _CATEGORY else "api"
    ecs_category = _CATEGORY[category][0]
    ds = dataset(event)
    doc: dict[str, Any] = {
        "@timestamp": _iso(event.timestamp),
        "ecs": {"version": ECS_VERSION},
        "data_stream": {"type": "logs", "dataset": ds, "namespace": namespace},
        "event": {
            "kind": "event",
            "category": [ecs_category],
            "type": [event_type(ecs_category, event.action)],
            "action": event.action,
            "outcome": event.outcome,
            "id": event.id,
            "provider": event.vendor,
            "module": event.vendor,
            "dataset": ds,
            "created": _iso(event.ingested_at),
            "original": jsoncodec.dumps_str(event.raw),
        },
        "cloud": {"provider": event.vendor},
    }
    related_user: list[str] = []
    actor = event.actor
    user = {k: v for k, v in (("id", actor.id), ("name", actor.name), ("email", actor.email)) if v}
    if user:
        doc["user"] = user
        related_user = list(dict.fromkeys(user.values()))
    if event.source.ip:
        src: dict[str, Any] = {"ip": event.source.ip}
        if event.source.port is not None:
            src["port"] = event.source.port
        doc["source"] = src
        doc["related"] = {"ip": [event.source.ip]}
    if related_user:
        doc.setdefault("related", {})["user"] = related_user
    org = {k: v for k, v in (("id", event.tenant_id), ("name", event.tenant_name)) if v}
    if org:
        doc["organization"] = org
    if event.region:
        doc["cloud"]["region"] = event.region
    if event.url:
        doc["url"] = {"original": event.url}
    if event.message:
        doc["message"] = event.message
    vendor_fields: dict[str, Any] = {}
    if actor.type:
        vendor_fields["actor_type"] = actor.type
    target = {k: v for k, v in (("type", event.target.type), ("id", event.target.id), ("name", event.target.name)) if v}
    if target:
        vendor_fields["target"] = target
    if event.details:
        vendor_fields["details"] = event.details
    if vendor_fields:
        doc[event.vendor] = {event.product: vendor_fields}
    return doc


def _iso(value: Any) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
