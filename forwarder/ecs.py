"""AuditEvent → Elastic Common Schema document: the only ECS mapping.

Used by the file sink (NDJSON), the Elasticsearch sink and the Logstash sink, so
every Elastic-side consumer sees the same document. Data stream names are
``logs-forwarder_<vendor>.<product>-<namespace>``: the ``forwarder_`` prefix keeps
our datasets apart from Elastic's own integrations (which ship e.g.
``carbon_black_cloud.audit`` with its own ingest pipeline). The field types of
everything written here are in ``forwarder.es_templates.FIELD_TYPES``; a test
walks documents of every vendor against it.

| AuditEvent            | ECS                                                    |
|-----------------------|--------------------------------------------------------|
| timestamp             | @timestamp                                             |
| ingested_at           | event.created                                          |
| id                    | event.id                                               |
| action                | event.action                                           |
| outcome               | event.outcome                                          |
| category (+ action)   | event.category / event.type (ECS allowed values only)  |
| vendor / product      | event.provider, event.module, event.dataset, data_stream.* |
| raw                   | event.original (JSON text)                             |
| actor.id/name/email   | user.id / user.name / user.email, + related.user       |
| source.ip / port      | source.ip + source.port (source.address if it is not an IP); the same under client.* when the vendor calls it the client; + related.ip |
| tenant_id / name      | organization.id / organization.name, cloud.account.*   |
| vendor, region        | cloud.provider, cloud.region (not for Carbon Black Cloud, no cloud provider) |
| url                   | url.original                                           |
| message               | message                                                |
| actor.type, target.*, details | <vendor>.<product>.actor.type / .target.* / .details (flattened) |

Per vendor (``VENDOR_SHAPES``), so that queries written for Elastic's own
integration of a vendor work on our documents too: Carbon Black Cloud also gets
``client.ip`` (the actor's address), ``client.user.id`` (the actor),
``event.reason`` (the description as a keyword; ``message`` is text only),
``carbon_black_cloud.audit.flagged``/``.verbose`` as booleans (instead of under
``.details``), and no ``cloud.*``.

``event.category``/``event.type`` follow the allowed values of ECS (``schemas/event.yml``):
the category comes from the source, the type from the first verb of the action
("User logged in" → start, "Task.Create" → creation), and IAM events also say
what kind of object changed (user, group or admin). A login or logout that a
source filed under another category also gets the ``authentication`` category.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from forwarder import jsoncodec
from forwarder.event import AuditEvent
from forwarder.netaddr import split_address
from forwarder.timeutil import iso

ECS_VERSION = "9.4.0"  # the ECS release whose allowed values and field types this mapping follows
DATASET_PREFIX = "forwarder_"

# Allowed event.type values per ECS event.category (ECS 9.4 schemas/event.yml).
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "api": frozenset({"access", "admin", "allowed", "change", "creation", "deletion", "denied", "end", "info", "start", "user"}),
    "authentication": frozenset({"start", "end", "info"}),
    "configuration": frozenset({"access", "change", "creation", "deletion", "info"}),
    "database": frozenset({"access", "change", "info", "error"}),
    "driver": frozenset({"change", "end", "info", "start"}),
    "email": frozenset({"info"}),
    "file": frozenset({"access", "change", "creation", "deletion", "info"}),
    "host": frozenset({"access", "change", "end", "info", "start"}),
    "iam": frozenset({"admin", "change", "creation", "deletion", "group", "info", "user"}),
    "intrusion_detection": frozenset({"allowed", "denied", "info"}),
    "library": frozenset({"start"}),
    "malware": frozenset({"info"}),
    "network": frozenset({"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"}),
    "package": frozenset({"access", "change", "deletion", "info", "installation", "start"}),
    "process": frozenset({"access", "change", "end", "info", "start"}),
    "registry": frozenset({"access", "change", "creation", "deletion"}),
    "session": frozenset({"start", "end", "info"}),
    "threat": frozenset({"indicator"}),
    "vulnerability": frozenset({"info"}),
    "web": frozenset({"access", "error", "info"}),
}
DEFAULT_CATEGORY = "api"  # vendor audit logs record control-plane API calls
_FALLBACK_TYPE = {"library": "start", "registry": "change", "threat": "indicator"}  # categories without "info"

# Verb classes. Each lists its base verbs; _forms() adds the inflections (created, deletes, logging...).
# Preferred event.type per class, in order; the first one the category allows wins.
_VERB_TYPES: dict[str, tuple[str, ...]] = {
    "login": ("start",),
    "logout": ("end",),
    "create": ("creation", "installation"),
    "delete": ("deletion",),
    "change": ("change",),
    "access": ("access",),
    "start": ("start", "change"),
    "stop": ("end", "change"),
    "deny": ("denied",),
    "allow": ("allowed",),
}
_VERBS: dict[str, tuple[str, ...]] = {
    "login": ("login", "logon", "signin", "authenticate", "sso"),
    "logout": ("logout", "logoff", "signout"),
    "create": ("create", "add", "new", "upload", "insert", "provision", "invite", "generate", "register",
               "import", "clone", "copy", "issue", "install", "launch", "deploy", "submit"),
    "delete": ("delete", "remove", "destroy", "deprovision", "revoke", "purge", "terminate", "unregister",
               "uninstall", "erase", "drop", "decommission", "expire"),
    "change": ("update", "modify", "change", "edit", "set", "patch", "assign", "unassign", "enable", "disable",
               "rename", "move", "attach", "detach", "reset", "rotate", "grant", "restore", "suspend", "resume",
               "lock", "unlock", "activate", "deactivate", "approve", "resize", "upgrade", "downgrade",
               "configure", "apply", "save", "replace", "renew", "link", "unlink", "tag", "untag", "transfer",
               "promote", "demote", "scale", "quarantine", "acknowledge", "dismiss", "mark"),
    "access": ("download", "read", "view", "get", "list", "access", "export", "open", "search", "query",
               "fetch", "retrieve", "describe", "show", "browse", "inspect"),
    "start": ("start", "restart", "reboot", "boot", "run", "execute", "trigger"),
    "stop": ("stop", "shutdown", "halt", "cancel", "abort", "kill"),
    "deny": ("deny", "block", "reject", "forbid", "refuse"),
    "allow": ("allow", "permit", "whitelist", "allowlist"),
}
# Two-word spellings of login/logout ("logged in", "signed out").
_PHRASES = {("log", "in"): "login", ("log", "on"): "login", ("sign", "in"): "login",
            ("log", "out"): "logout", ("log", "off"): "logout", ("sign", "out"): "logout"}
# IAM object words → the event.type that names the kind of object (ECS: user, group, admin).
_IAM_OBJECTS = {
    "user": "user", "users": "user", "account": "user", "accounts": "user", "member": "user", "members": "user",
    "membership": "user", "password": "user", "mfa": "user", "profile": "user", "invitation": "user",
    "group": "group", "groups": "group", "team": "group", "teams": "group", "usergroup": "group",
    "role": "admin", "roles": "admin", "permission": "admin", "permissions": "admin", "policy": "admin",
    "policies": "admin", "privilege": "admin", "apikey": "admin", "token": "admin", "accesstoken": "admin",
    "useraccesstoken": "admin", "client": "admin", "application": "admin", "identityprovider": "admin",
    "idp": "admin", "sso": "admin", "authenticationmethod": "admin", "publickey": "admin", "keycert": "admin",
    "accesslevel": "admin", "connector": "admin",
}


def _forms(base: str) -> set[str]:
    """Inflections of an English verb, generous on purpose (unused extra forms do no harm)."""
    stem = base[:-1] if base.endswith("e") else base
    forms = {base, base + "s", base + "es", stem + "ed", stem + "ing", base + "d", base + "ed"}
    if len(base) > 2 and base[-1] not in "aeiouwxy" and base[-2] in "aeiou" and base[-3] not in "aeiou":
        forms |= {base + base[-1] + "ed", base + base[-1] + "ing"}  # stopped, logging
    if base.endswith("y") and base[-2] not in "aeiou":
        forms |= {base[:-1] + "ied", base[:-1] + "ies"}  # queried, applies
    return forms


_WORD_VERB: dict[str, str] = {}
for _cls, _bases in _VERBS.items():
    for _base in _bases:
        for _form in _forms(_base):
            _WORD_VERB.setdefault(_form, _cls)
_PHRASE_VERB: dict[tuple[str, str], str] = {}
for (_first, _second), _cls in _PHRASES.items():
    for _form in _forms(_first):
        _PHRASE_VERB[(_form, _second)] = _cls
for _word in ("logged", "logging", "signed", "signing"):
    for _particle, _cls in (("in", "login"), ("on", "login"), ("out", "logout"), ("off", "logout")):
        _WORD_VERB.setdefault(_word + _particle, _cls)
_TOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def words(text: str) -> list[str]:
    """Lower-case words of an action: ``CreateUser``, ``update_role``, ``Task.Create``, ``Logged in``."""
    return [w.lower() for w in _TOKEN.findall(text)]


def verb_class(tokens: list[str]) -> str | None:
    """The class of the first verb in ``tokens`` (``login``, ``create``, ...), or None."""
    for i, word in enumerate(tokens):
        if i + 1 < len(tokens):
            phrase = _PHRASE_VERB.get((word, tokens[i + 1]))
            if phrase is not None:
                return phrase
        cls = _WORD_VERB.get(word)
        if cls is not None:
            return cls
    return None


@lru_cache(maxsize=8192)
def categorize(category: str | None, action: str | None, target_type: str | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(event.category, event.type) for an AuditEvent category, its action text and target type.

    Every type returned is allowed for at least one returned category.
    """
    ecs_category = category if category in ALLOWED_TYPES else DEFAULT_CATEGORY
    categories = [ecs_category]
    tokens = words(action or "")
    verb = verb_class(tokens)
    if verb in ("login", "logout") and ecs_category not in ("authentication", "session"):
        categories.append("authentication")
    allowed = frozenset().union(*(ALLOWED_TYPES[c] for c in categories))
    types: list[str] = []
    for candidate in _VERB_TYPES.get(verb or "", ()):
        if candidate in allowed:
            types.append(candidate)
            break
    if "iam" in categories:
        objects = tokens + words(target_type or "")
        joined = "".join(words(target_type or ""))
        kind = _IAM_OBJECTS.get(joined) or next((_IAM_OBJECTS[w] for w in objects if w in _IAM_OBJECTS), None)
        if kind is not None and kind not in types:
            types.append(kind)
    if not types:
        types.append("info" if "info" in allowed else _FALLBACK_TYPE[ecs_category])
    return tuple(categories), tuple(types)


def dataset(event: AuditEvent) -> str:
    """The ``data_stream.dataset`` (and ``event.dataset``) of an event."""
    return f"{DATASET_PREFIX}{event.vendor}.{event.product}"


@dataclass(frozen=True)
class VendorShape:
    """Where one vendor's documents differ from the generic mapping, mostly so that queries written
    for Elastic's own integration of that vendor also work on our documents."""

    client: bool = False  # source.* also as client.*, and the actor as client.user.id
    reason: bool = False  # message also as event.reason: a keyword, where message is text only
    booleans: tuple[str, ...] = ()  # details keys written as booleans at <vendor>.<product>.<key>
    cloud: bool = True  # the vendor is a cloud provider in ECS's sense (cloud.provider, .account, .region)


#: Elastic's carbon_black_cloud integration writes actor_ip as client.ip, actor as client.user.id,
#: description as event.reason and flagged/verbose as booleans; Carbon Black Cloud hosts no workloads.
VENDOR_SHAPES: dict[str, VendorShape] = {
    "carbon_black_cloud": VendorShape(client=True, reason=True, booleans=("flagged", "verbose"), cloud=False),
}
_GENERIC = VendorShape()


def _calls_it_client(raw: dict[str, Any]) -> bool:
    """The vendor names the address the *client* address (Crusoe ``client_ip``, CB v3 ``clientIp``)."""
    return "client_ip" in raw or "clientIp" in raw


@lru_cache(maxsize=256)
def _names(vendor: str, product: str) -> tuple[str, str]:
    """(dataset, module) of a vendor stream."""
    return f"{DATASET_PREFIX}{vendor}.{product}", f"{DATASET_PREFIX}{vendor}"


@lru_cache(maxsize=65536)
def _endpoint(address: str) -> tuple[str | None, int | None]:
    """``split_address`` of an event's source address (the same clients come back event after event)."""
    return split_address(address)


def to_ecs(event: AuditEvent, namespace: str = "default") -> dict[str, Any]:
    """The ECS document for ``event`` (ready for ``jsoncodec.dumps``)."""
    target = event.target
    actor = event.actor
    vendor = event.vendor
    shape = VENDOR_SHAPES.get(vendor, _GENERIC)
    categories, types = categorize(event.category, event.action or event.message, target.type)
    ds, module = _names(vendor, event.product)
    ev: dict[str, Any] = {
        "kind": "event",
        "category": list(categories),
        "type": list(types),
        "outcome": event.outcome,
        "id": event.id,
        "provider": vendor,
        "module": module,
        "dataset": ds,
        "created": iso(event.ingested()),
        "original": jsoncodec.dumps_str(event.raw),
    }
    if event.action:
        ev["action"] = event.action
    message = event.message
    if message and shape.reason:
        ev["reason"] = message
    doc: dict[str, Any] = {
        "@timestamp": iso(event.timestamp),
        "ecs": {"version": ECS_VERSION},
        "data_stream": {"type": "logs", "dataset": ds, "namespace": namespace},
        "event": ev,
    }
    if shape.cloud:
        cloud: dict[str, Any] = {"provider": vendor}
        doc["cloud"] = cloud
    else:
        cloud = {}
    related_user: list[str] = []
    user: dict[str, str] = {}
    if actor.id:
        user["id"] = actor.id
        related_user.append(actor.id)
    if actor.name:
        user["name"] = actor.name
        if actor.name not in related_user:
            related_user.append(actor.name)
    if actor.email:
        user["email"] = actor.email
        if actor.email not in related_user:
            related_user.append(actor.email)
    if user:
        doc["user"] = user
    related: dict[str, Any] = {"user": related_user} if related_user else {}
    address = event.source.ip
    if address:
        ip, port = _endpoint(address) if type(address) is str else (None, None)
        endpoint: dict[str, Any]
        if ip is not None:
            endpoint = {"ip": ip}
            related["ip"] = [ip]
        else:  # not an IP: keep the text where a keyword field takes it
            endpoint = {"address": address}
        if event.source.port is not None:
            port = event.source.port
        if port is not None:
            endpoint["port"] = port
        doc["source"] = endpoint
        if shape.client or _calls_it_client(event.raw):
            doc["client"] = dict(endpoint)
    if shape.client and actor.id:
        doc.setdefault("client", {})["user"] = {"id": actor.id}
    if related:
        doc["related"] = related
    if event.tenant_id or event.tenant_name:
        org = {}
        if event.tenant_id:
            org["id"] = event.tenant_id
        if event.tenant_name:
            org["name"] = event.tenant_name
        doc["organization"] = org
        cloud["account"] = org.copy()
    if event.region:
        cloud["region"] = event.region
    if event.url:
        doc["url"] = {"original": event.url}
    if message:
        doc["message"] = message
    vendor_fields: dict[str, Any] = {}
    if actor.type:
        vendor_fields["actor"] = {"type": actor.type}
    if target.type or target.id or target.name:
        tgt = {}
        if target.type:
            tgt["type"] = target.type
        if target.id:
            tgt["id"] = target.id
        if target.name:
            tgt["name"] = target.name
        vendor_fields["target"] = tgt
    details = event.details
    if shape.booleans and details:
        lifted = {k: details[k] for k in shape.booleans if isinstance(details.get(k), bool)}
        if lifted:
            vendor_fields.update(lifted)
            details = {k: v for k, v in details.items() if k not in lifted}
    if details:
        vendor_fields["details"] = details
    if vendor_fields:
        doc[vendor] = {event.product: vendor_fields}
    return doc
