"""HPE GreenLake audit-log simulator: token endpoints, v1 and v2beta1 log APIs, as strict as documented.

What it enforces:

- **Tokens**: ``POST /as/token.oauth2`` (legacy SSO) and
  ``POST /authorization/v2/oauth2/{workspace_id}/token``. Form-encoded body,
  ``grant_type=client_credentials``, the client authenticated by HTTP Basic *or*
  form fields (both at once is refused, as RFC 6749 says), the secret verified;
  the workspace endpoint also checks that the client belongs to that workspace.
  Tokens are opaque and expire after ``faults.token_ttl`` (returned as ``expires_in``).
  Errors are RFC 6749 JSON (``invalid_client`` 401, ``invalid_request`` /
  ``unsupported_grant_type`` 400).
- **APIs**: ``GET /audit-log/v1/logs``, ``/audit-log/v1/logs/{id}/detail`` (singular);
  ``GET /audit-log/v2beta1/logs``, ``/logs/{id}``, ``/logs/{id}/details`` (plural).
  A valid bearer token is required (401 otherwise); data is scoped to the token's
  workspace. Each version has its own item shape and envelope
  (``items, count, offset, total, remainingRecords``).
- **Query**: a real parser of the filter grammar (``field eq|lt|ge 'v'``,
  ``contains(field, 'v')``, ``field in ('a', ...)`` joined by lower-case ``and``;
  ``''`` inside a string is a quote). Refused with 400 and HPE's error body
  (``errorCode, message, debugId, httpStatusCode, errorDetails``): unknown fields
  of the version, operators a field does not support, ``or``/``not``/parentheses,
  unquoted or unterminated values, createdAt values that are not RFC 3339,
  ``hasDetails``/``workspace/type`` values outside their sets, more than five
  ``serviceOffer/id`` values. ``limit`` 1..2000, ``offset`` ≥ 0, ``sort`` (v2beta1
  only), ``select`` (each version's names; ``id`` and ``type`` always come back,
  which HPE does not document), ``all`` (v1 only); any other
  parameter is refused. v2beta1 without a ``serviceOffer/id`` clause returns
  platform logs only.
- **Cap**: ``total`` ≤ 10,000 with ``remainingRecords``; records past the
  10,000th of a query cannot be paged to (those pages are empty). The
  ``miscount`` knob adds that much to every ``total`` (a vendor whose count
  disagrees with what it serves).
- **Rate limits**: fixed one-minute windows on ``clock`` (aligned on the minute,
  as API gateways count): ``rate_limit`` per client (100) and ``rate_overall``
  for everyone (300). Every API response carries ``ratelimit-limit``,
  ``ratelimit-remaining`` and ``ratelimit-reset``; over the limit → 429 with
  HPE's four-field error body.
- **Data**: deterministic from ``seed``: three workspaces (STANDALONE, MSP,
  TENANT) with about ``per_hour`` records an hour each, generated lazily per hour
  (records later than now do not exist yet), across the platform and five
  services, many categories, some with details, an occasional invalid IP (as in
  HPE's own samples). ``add_records`` adds bulk records (e.g. more than the cap
  in one window); ``records`` is the uncapped ground truth for tests.

Not modeled: JWT claims (tokens are opaque), MSP token exchange (RFC 8693),
record updates over time (``generation`` is fixed per record), late-arriving
records, retention beyond "a query without a lower bound starts 90 days back",
HPE's exact error codes and texts (the shape is documented, the words are ours),
case sensitivity of ``eq``/``contains`` (case-sensitive here), whether HPE
accepts ``''`` escaping (accepted here), rate limits on the token endpoint, and
the IAM ``X-RateLimit-*`` header family.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hmac
import math
import re
import secrets as _secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs

from forwarder.simulators.base import UTC, Faults, Request, Response, Simulator, parse_rfc3339, rng

PLATFORM_ID = "00000000-0000-0000-0000-000000000000"
HOUR = 3600
RETENTION = 90 * 86400
#: Most records one query reaches: ``total`` never exceeds it (vendors/hpe-greenlake.md §1, §6).
CAP = 10_000
#: Largest ``limit`` (§4).
MAX_LIMIT = 2000

# The filter grammar's field table (§5), per version: field -> operators it takes.
_TEXT = frozenset({"eq", "contains"})
_EQ = frozenset({"eq"})
_BOTH_VERSIONS = {
    "createdAt": frozenset({"lt", "ge"}), "category": frozenset({"eq", "in"}), "description": _TEXT, "region": _EQ, "hasDetails": _EQ,
}
FILTER_OPS: dict[str, dict[str, frozenset[str]]] = {
    "v1": {
        **_BOTH_VERSIONS,
        "additionalInfo/ipAddress": _TEXT, "user/username": _TEXT, "workspace/workspaceName": _TEXT, "application/id": _EQ,
    },
    "v2beta1": {
        **_BOTH_VERSIONS,
        "ipAddress": _TEXT, "username": _TEXT, "workspace/name": _TEXT, "workspace/type": _EQ,
        "serviceOffer/id": frozenset({"eq", "in"}),
    },
}
#: Fields whose values come from a closed set (§5).
FILTER_VALUES = {"hasDetails": frozenset({"true", "false"}), "workspace/type": frozenset({"STANDALONE", "TENANT", "MSP"})}
#: Most values an ``in`` list may hold, where documented (§4: at most five service offers).
MAX_IN = {"serviceOffer/id": 5}
#: The ``select`` names of each version (§4).
SELECT_NAMES = {
    "v1": frozenset({"additionalInfo", "createdAt", "category", "hasDetails", "workspace/workspaceName", "description", "user/username"}),
    "v2beta1": frozenset({"serviceOffer", "createdAt", "category", "hasDetails", "workspace", "description", "username", "ipAddress", "additionalInfo"}),
}


@dataclass(frozen=True)
class Service:
    """A service offer whose logs the workspace can see."""

    id: str
    name: str
    region: str
    kind: str


def _service(name: str, region: str, kind: str) -> Service:
    return Service(str(uuid.uuid5(uuid.NAMESPACE_URL, f"greenlake-simulator/{name}")), name, region, kind)


PLATFORM = Service(PLATFORM_ID, "HPE GreenLake platform", "us-west", "platform")
SERVICES = (
    PLATFORM,
    Service("68067533-5764-401a-9620-24e6e2cdc574", "Backup and Recovery", "us-east", "backup"),
    _service("Compute Ops Management", "eu-central", "compute"),
    _service("Data Services", "us-west", "storage"),
    _service("Aruba Central", "ap-northeast", "network"),
    _service("Private Cloud Business Edition", "eu-west", "cloud"),
)

# (category, description, detail header or None, detail body, additional-info kind)
_TEMPLATES: dict[str, list[tuple[str, str, str | None, tuple[str, ...], str | None]]] = {
    "platform": [
        ("User Activity", "User {user} logged in via ping mode.", None, (), None),
        ("User Activity", "User {user} logged out.", None, (), None),
        ("User Activity", "Login failed for user {user}: invalid credentials.", None, (), None),
        ("User Management", "User {other} invited to workspace {ws}.", "Invitation", ("Role: Workspace Observer",), None),
        ("User Management", "Role assignment for {other} updated to Workspace Administrator.", "Role change", ("Previous role: Workspace Observer", "New role: Workspace Administrator"), None),
        ("User Management", "User {other} removed from workspace {ws}.", None, (), None),
        ("Device Management", "Device {serial} added to workspace.", None, (), "device"),
        ("Device Management", "Device {serial} assigned to {service}.", "Device assignment", ("Application: {service}", "Region: {region}"), "device"),
        ("Device Management", "Device {serial} archived.", None, (), "device"),
        ("Subscription Management", "Subscription key {key} added.", "Subscription", ("Tier: Foundation", "Quantity: 25"), None),
        ("API Gateway", "API client {client} created.", None, (), None),
        ("API Gateway", "API client {client} credentials regenerated.", None, (), None),
    ],
    "msp": [
        ("Customer Management", "Tenant workspace {tenant} created.", "Tenant", ("Tenant type: TENANT",), None),
        ("Customer Management", "Tenant workspace {tenant} deleted.", None, (), None),
    ],
    "backup": [
        ("Protection Policy", "Protection policy {policy} created.", "Policy", ("Schedule: daily 02:00", "Retention: 30 days"), None),
        ("Storage settings", "Storage firmware updated", "Storage Firmware Update", ("Firmware version: 1.2.3", "Update status: Successful"), "server"),
    ],
    "compute": [
        ("Server Management", "Server {server} firmware update started.", "Firmware", ("Baseline: 2024.04",), "server"),
        ("Server Management", "Server {server} power state changed to On.", None, (), "server"),
    ],
    "storage": [("Volume Management", "Volume {volume} deleted.", "Volume", ("Size: 512 GiB",), None)],
    "network": [("Network Configuration", "Firewall policy {policy} modified.", "Policy change", ("Rules changed: 3",), None)],
    "cloud": [("Cluster Management", "Cluster {cluster} upgraded successfully.", None, (), None)],
}
_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
# Generators of the placeholders in descriptions and detail lines (user, ws and region come from the record).
_NAMES: dict[str, Callable[[Any, Any], str]] = {
    "other": lambda r, ws: f"{r.choice(_PEOPLE)}.{r.randrange(100)}@{ws.domain}",
    "serial": lambda r, ws: f"SG{r.randrange(10**8):08d}",
    "service": lambda r, ws: r.choice(SERVICES[1:]).name,
    "key": lambda r, ws: f"KEY-{r.randrange(16**8):08X}",
    "client": lambda r, ws: f"automation-{r.randrange(1000)}",
    "tenant": lambda r, ws: f"Tenant {r.randrange(100)}",
    "policy": lambda r, ws: f"policy-{r.randrange(1000)}",
    "server": lambda r, ws: f"srv-{r.randrange(10000):04d}",
    "volume": lambda r, ws: f"vol-{r.randrange(10000)}",
    "cluster": lambda r, ws: f"pcbe-{r.randrange(50)}",
}
_FIELDS_OF = {
    (text, body): [name for line in (text, *body) for _, name, _, _ in string.Formatter().parse(line) if name]
    for templates in _TEMPLATES.values()
    for _, text, _, body, _ in templates
}


@dataclass
class Workspace:
    """A GreenLake workspace and how busy it is."""

    id: str
    name: str
    type: str
    per_hour: int
    domain: str


@dataclass
class Client:
    """A personal API client: credentials bound to one workspace."""

    id: str
    secret: str
    workspace: Workspace


@dataclass(eq=False)
class Entry:
    """One audit record, rendered per API version on demand."""

    t: dt.datetime
    stamp: str
    workspace: Workspace
    service: Service
    category: str
    description: str
    user: str
    ip: str | None
    info: dict[str, str] | None
    has_details: bool
    detail: tuple[str, tuple[str, ...]] | None
    generation: int
    updated: str
    id_v1: str
    id_v2: str
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key(self) -> tuple[dt.datetime, str]:
        return (self.t, self.id_v2)


@dataclass
class Call:
    """One API request as the simulator saw it (``time`` on the simulator's clock)."""

    time: float
    client: str | None
    path: str
    status: int


class FilterError(ValueError):
    """A filter HPE would refuse."""


@dataclass(frozen=True)
class Condition:
    """One parsed filter clause."""

    field: str
    op: str
    values: tuple[str, ...]


_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_/]*)|(?P<other>\S))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        assert m is not None  # `other` matches any non-space character
        kind = m.lastgroup or "other"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_filter(text: str, version: str) -> list[Condition]:
    """Parse and check a filter expression of ``version``; FilterError says what HPE would refuse."""
    tokens = _tokens(text)
    pos = 0

    def take(kind: str, value: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise FilterError(f"unexpected end of filter, expected {value or kind}")
        got_kind, got = tokens[pos]
        if got_kind != kind or (value is not None and got != value):
            if got_kind == "other" and got == "'":
                raise FilterError("unterminated string value")
            raise FilterError(f"unexpected {got!r}, expected {value or kind}")
        pos += 1
        return got[1:-1].replace("''", "'") if kind == "string" else got

    def clause() -> Condition:
        name = take("word")
        if name == "contains" and pos < len(tokens) and tokens[pos] == ("punct", "("):
            take("punct", "(")
            fld = take("word")
            take("punct", ",")
            value = take("string")
            take("punct", ")")
            return Condition(fld, "contains", (value,))
        op = take("word")
        if op in ("eq", "lt", "ge"):
            return Condition(name, op, (take("string"),))
        if op == "in":
            take("punct", "(")
            values = [take("string")]
            while pos < len(tokens) and tokens[pos] == ("punct", ","):
                take("punct", ",")
                values.append(take("string"))
            take("punct", ")")
            return Condition(name, "in", tuple(values))
        raise FilterError(f"unsupported operator {op!r} (supported: eq, lt, ge, in, contains)")

    if not tokens:
        raise FilterError("empty filter")
    conditions = [clause()]
    while pos < len(tokens):
        word = tokens[pos][1]
        if word != "and":
            raise FilterError(f"unsupported {word!r}: clauses must be joined with 'and'")
        pos += 1
        conditions.append(clause())
    for cond in conditions:
        _check_condition(cond, version)
    return conditions


def _check_condition(cond: Condition, version: str) -> None:
    ops = FILTER_OPS[version].get(cond.field)
    if ops is None:
        raise FilterError(f"unsupported filter property {cond.field!r}")
    if cond.op not in ops:
        raise FilterError(f"operator {cond.op!r} is not supported for {cond.field!r}")
    most = MAX_IN.get(cond.field)
    if most is not None and len(cond.values) > most:
        raise FilterError(f"at most {most} values can be given for {cond.field!r}")
    allowed = FILTER_VALUES.get(cond.field)
    for value in cond.values:
        if allowed is not None and value not in allowed:
            raise FilterError(f"invalid value {value!r} for {cond.field!r}")
        if cond.field == "createdAt":
            try:
                parse_rfc3339(value)
            except ValueError:
                raise FilterError(f"createdAt value {value!r} is not an RFC 3339 timestamp") from None


def _path(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _matches(item: dict[str, Any], cond: Condition) -> bool:
    value = _path(item, cond.field)
    if value is None or isinstance(value, (dict, list)):
        return False
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if cond.op == "contains":
        return cond.values[0] in text
    return text in cond.values


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    return [str(value)]


class GreenLakeSimulator(Simulator):
    """HPE GreenLake token and audit-log endpoints on 127.0.0.1."""

    VENDOR = "hpe_greenlake"

    def __init__(
        self,
        *,
        port: int = 0,
        seed: int = 42,
        faults: Faults | None = None,
        per_hour: int = 20,
        rate_limit: int | None = 100,
        rate_overall: int | None = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate_limit = rate_limit
        self.rate_overall = rate_overall
        self.clock = clock
        self.calls: list[Call] = []
        self.miscount = 0
        self.workspaces: dict[str, Workspace] = {}
        self.clients: dict[str, Client] = {}
        self._seed = seed
        self._data_lock = threading.RLock()
        self._buckets: dict[tuple[str, int], list[Entry]] = {}
        self._extra: dict[tuple[str, int], list[Entry]] = {}
        self._by_id: dict[str, Entry] = {}
        self._windows: dict[tuple[str, int], int] = {}
        self._batches = 0
        super().__init__(port=port, seed=seed, faults=faults)
        for name, kind in (("Acme Corp", "STANDALONE"), ("Globex MSP", "MSP"), ("Initech", "TENANT")):
            self.add_client(self.add_workspace(name, kind, per_hour).id)

    # -- set-up ------------------------------------------------------------------
    def setup(self) -> None:
        self.route("POST", r"/as/token\.oauth2", self._token)
        self.route("POST", r"/authorization/v2/oauth2/(?P<workspace_id>[^/]+)/token", self._token)
        self.route("GET", r"/audit-log/(?P<version>v1|v2beta1)/logs", self._api(self._logs))
        self.route("GET", r"/audit-log/v2beta1/logs/(?P<log_id>[^/]+)", self._api(self._one_log))
        self.route("GET", r"/audit-log/v1/logs/(?P<log_id>[^/]+)/detail", self._api(self._detail))
        self.route("GET", r"/audit-log/v2beta1/logs/(?P<log_id>[^/]+)/details", self._api(self._detail))

    def add_workspace(self, name: str, kind: str = "STANDALONE", per_hour: int = 0) -> Workspace:
        """A workspace (its id derives from the seed and ``name``)."""
        r = rng(self._seed, "workspace", name)
        domain = re.sub(r"[^a-z0-9]+", "", name.lower())[:20] + ".example"
        ws = Workspace(f"{r.getrandbits(128):032x}", name, kind, per_hour, domain)
        self.workspaces[ws.id] = ws
        return ws

    def add_client(self, workspace_id: str) -> Client:
        """A new API client of the workspace, with a fresh id and secret."""
        client = Client(str(uuid.uuid4()), _secrets.token_urlsafe(24), self.workspaces[workspace_id])
        self.clients[client.id] = client
        return client

    def add_records(
        self, workspace_id: str, start: dt.datetime, end: dt.datetime, count: int, *, service: Service | None = None
    ) -> None:
        """``count`` more records spread over ``[start, end)`` (deterministic for the same arguments)."""
        ws = self.workspaces[workspace_id]
        with self._data_lock:
            self._batches += 1
            r = rng(self._seed, "batch", workspace_id, start.isoformat(), end.isoformat(), count, self._batches)
            a, span = start.timestamp(), (end - start).total_seconds()
            for _ in range(count):
                entry = self._entry(r, ws, a + r.random() * span, service)
                if entry.t >= end:  # float rounding can land exactly on the (excluded) end
                    continue
                self._extra.setdefault((ws.id, int(entry.t.timestamp()) // HOUR), []).append(entry)
            self._buckets = {k: v for k, v in self._buckets.items() if k[0] != ws.id}

    def demo_source(self, events: int) -> tuple[dict[str, Any], dict[str, str]]:
        """A v1 source reading exactly ``events`` records of a demo workspace (the last hour)."""
        ws = self.add_workspace(f"Demo workspace {len(self.workspaces)}", "STANDALONE")
        client = self.add_client(ws.id)
        end = dt.datetime.now(UTC) - dt.timedelta(minutes=10)
        self.add_records(ws.id, end - dt.timedelta(minutes=40), end, events)
        env = "FORWARDER_DEMO_HPE_GREENLAKE_SECRET"
        table = {
            "name": "hpe-greenlake-demo",
            "type": "hpe_greenlake",
            "base_url": self.url,
            "workspace_id": ws.id,
            "client_id": client.id,
            "client_secret": f"env:{env}",
            "lookback": "1h",
            "http": {"backoff_base": 0.05, "backoff_max": 1.0},
        }
        return table, {env: client.secret}

    # -- data ----------------------------------------------------------------------
    def _entry(self, r: Any, ws: Workspace, epoch: float, service: Service | None = None) -> Entry:
        style = r.randrange(3)
        ms = int(epoch * 1000)
        ms -= ms % 1000 if style == 0 else ms % 100 if style == 1 else 0
        t = dt.datetime.fromtimestamp(ms / 1000, UTC)
        frac = ("", f".{(ms % 1000) // 100}", f".{ms % 1000:03d}")[style]
        stamp = t.isoformat(timespec="seconds")[:19] + frac + "Z"
        if service is None:
            service = PLATFORM if r.random() < 0.6 else r.choice(SERVICES[1:])
        templates = _TEMPLATES[service.kind] + (_TEMPLATES["msp"] if ws.type == "MSP" and service is PLATFORM else [])
        category, text, header, body, info_kind = r.choice(templates)
        user = f"{r.choice(_PEOPLE)}@{ws.domain}"
        names = {"user": user, "ws": ws.name, "region": service.region}
        for name in _FIELDS_OF[text, body]:
            if name not in names:
                names[name] = _NAMES[name](r, ws)
        roll = r.random()
        ip = None if roll < 0.05 else "104.36.311.11" if roll < 0.07 else f"{r.choice((10, 172, 192))}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
        info = None
        if info_kind == "device":
            info = {"deviceType": r.choice(("SWITCH", "AP", "GATEWAY")), "serverSerial": names.get("serial") or _NAMES["serial"](r, ws)}
        elif info_kind == "server":
            info = {"serverName": names.get("server") or _NAMES["server"](r, ws), "serverSerial": f"CZ{r.randrange(10**8):08d}", "serverProductId": "P52534-B21", "deviceType": "SERVER"}
        generation = 2 if r.random() < 0.1 else 1
        updated = t + dt.timedelta(minutes=r.randrange(1, 120)) if generation > 1 else t
        entry = Entry(
            t=t, stamp=stamp, workspace=ws, service=service, category=category, description=text.format(**names),
            user=user, ip=ip, info=info, has_details=header is not None,
            detail=(header, tuple(line.format(**names) for line in body)) if header else None,
            generation=generation, updated=updated.isoformat(timespec="seconds")[:19] + "Z",
            id_v1=str(uuid.UUID(int=r.getrandbits(128), version=4)),
            id_v2=base64.urlsafe_b64encode(r.getrandbits(120).to_bytes(15, "big")).decode(),
        )
        self._by_id[entry.id_v1] = self._by_id[entry.id_v2] = entry
        return entry

    def _bucket(self, ws: Workspace, hour: int) -> list[Entry]:
        """The records of one hour, oldest first (cached once the hour is over)."""
        key = (ws.id, hour)
        with self._data_lock:
            cached = self._buckets.get(key)
            if cached is not None:
                return cached
            r = rng(self._seed, "hour", ws.id, hour)
            count = r.randint(ws.per_hour // 2, ws.per_hour * 3 // 2) if ws.per_hour else 0
            entries = [self._entry(r, ws, hour * HOUR + r.random() * HOUR) for _ in range(count)]
            now = time.time()
            entries = [e for e in entries if e.t.timestamp() <= now] + self._extra.get(key, [])
            entries.sort(key=Entry.key)
            if (hour + 1) * HOUR <= now:
                self._buckets[key] = entries
            return entries

    def _select(
        self, ws: Workspace, version: str, conditions: list[Condition], newest_first: bool, search: str | None, cap: int | None
    ) -> tuple[list[Entry], bool]:
        """Matching records in order; at most ``cap`` (and whether more matched)."""
        lows, highs, others = [], [], []
        for cond in conditions:
            if cond.field == "createdAt":
                (lows if cond.op == "ge" else highs).append(parse_rfc3339(cond.values[0]).timestamp())
            else:
                others.append(cond)
        now = time.time()
        lo = max(lows) if lows else now - RETENTION
        hi = min(highs) if highs else now
        platform_only = version == "v2beta1" and not any(c.field == "serviceOffer/id" for c in others)
        hours = range(math.floor(lo / HOUR), math.ceil(hi / HOUR))
        out: list[Entry] = []
        for hour in reversed(hours) if newest_first else hours:
            bucket = self._bucket(ws, hour)
            i = bisect.bisect_left(bucket, lo, key=lambda e: e.t.timestamp())
            j = bisect.bisect_left(bucket, hi, key=lambda e: e.t.timestamp())
            for entry in reversed(bucket[i:j]) if newest_first else bucket[i:j]:
                if platform_only and entry.service is not PLATFORM:
                    continue
                if others or search:
                    item = self._item(entry, version)
                    if not all(_matches(item, c) for c in others):
                        continue
                    if search and not any(search.lower() in s.lower() for s in _leaves(item)):
                        continue
                out.append(entry)
                if cap is not None and len(out) > cap:
                    return out[:cap], True
        return out, False

    def _item(self, entry: Entry, version: str) -> dict[str, Any]:
        cached = entry.views.get(version)
        if cached is not None:
            return cached
        ws, svc = entry.workspace, entry.service
        if version == "v1":
            info = dict(entry.info or {})
            if entry.ip is not None:
                info["ipAddress"] = entry.ip
            item: dict[str, Any] = {
                "id": entry.id_v1, "type": "/audit-log/logs", "user": {"username": entry.user},
                "application": {"id": svc.id}, "region": svc.region, "category": entry.category,
                "description": entry.description, "workspace": {"id": ws.id, "workspaceName": ws.name},
                "createdAt": entry.stamp, "updatedAt": entry.updated, "additionalInfo": info,
                "hasDetails": entry.has_details, "generation": entry.generation,
            }
        else:
            item = {
                "id": entry.id_v2, "type": "/audit-log/log",
                "serviceOffer": {"id": svc.id, "name": svc.name, "region": svc.region},
                "username": entry.user, "category": entry.category, "description": entry.description,
                "workspace": {"id": ws.id, "name": ws.name, "type": ws.type}, "createdAt": entry.stamp,
                "hasDetails": entry.has_details,
            }
            if entry.ip is not None:
                item["ipAddress"] = entry.ip
            if entry.info:
                item["additionalInfo"] = dict(entry.info)
        entry.views[version] = item
        return item

    def records(
        self, workspace_id: str, version: str, start: dt.datetime, end: dt.datetime, filter_text: str | None = None
    ) -> list[dict[str, Any]]:
        """Every record of ``[start, end)`` the API would match (no cap), oldest first: the tests' ground truth."""
        window = f"createdAt ge '{start.strftime('%Y-%m-%dT%H:%M:%SZ')}' and createdAt lt '{end.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        conditions = parse_filter(window + (f" and {filter_text}" if filter_text else ""), version)
        entries, _ = self._select(self.workspaces[workspace_id], version, conditions, False, None, None)
        return [self._item(e, version) for e in entries]

    # -- endpoints -------------------------------------------------------------------
    def _token(self, request: Request, workspace_id: str | None = None) -> Response:
        ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        if any(len(v) > 1 for v in form.values()):
            return _oauth_error(400, "invalid_request", "repeated parameter")
        fields = {k: v[0] for k, v in form.items()}
        if fields.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
        basic = request.header("authorization") or ""
        if basic.startswith("Basic "):
            if "client_secret" in fields:
                return _oauth_error(400, "invalid_request", "more than one client authentication method")
            try:
                client_id, _, secret = base64.b64decode(basic[6:], validate=True).decode().partition(":")
            except ValueError:
                return _oauth_error(401, "invalid_client", "malformed Basic credentials")
        else:
            client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(client.secret.encode(), secret.encode()):
            return _oauth_error(401, "invalid_client", "client authentication failed")
        if workspace_id is not None and client.workspace.id != workspace_id:
            return _oauth_error(401, "invalid_client", "the client does not belong to this workspace")
        body: dict[str, Any] = {
            "access_token": self.tokens.issue(client.id),
            "token_type": "Bearer",
            "expires_in": max(1, int(self.faults.token_ttl)),
        }
        if workspace_id is not None:
            body["scope"] = ["ccs.audit-trail.view"]
        return Response.json(body, 200, {"Cache-Control": "no-store"})

    def _api(self, handler: Callable[..., Response]) -> Callable[..., Response]:
        """Wrap an API route: bearer token, rate limits, rate-limit headers, call log."""

        def run(request: Request, **groups: str) -> Response:
            subject = self.tokens.subject(request.header("authorization"))
            client = self.clients.get(subject) if subject else None
            if client is None:
                resp = _hpe_error(401, "HPE_GL_ERROR_UNAUTHORIZED", "missing, invalid or expired bearer token")
            else:
                allowed, headers = self._count(client.id)
                if allowed:
                    resp = handler(request, client, **groups)
                else:
                    resp = _hpe_error(429, "HPE_GL_ERROR_TOO_MANY_REQUESTS", "rate limit exceeded; retry after ratelimit-reset seconds")
                resp.headers.update(headers)
            with self._lock:
                self.calls.append(Call(self.clock(), client.id if client else None, request.path, resp.status))
            return resp

        return run

    def _count(self, client_id: str) -> tuple[bool, dict[str, str]]:
        """Count one request against the client's and the overall minute; False when over a limit."""
        now = self.clock()
        minute = int(now // 60)
        reset = str(max(1, math.ceil((minute + 1) * 60 - now)))
        with self._lock:
            if (client_id, minute) not in self._windows:
                self._windows = {k: v for k, v in self._windows.items() if k[1] >= minute}
            mine = self._windows.get((client_id, minute), 0)
            everyone = self._windows.get(("*", minute), 0)
            over = (self.rate_limit is not None and mine >= self.rate_limit) or (
                self.rate_overall is not None and everyone >= self.rate_overall
            )
            if not over:
                mine += 1
                self._windows[(client_id, minute)] = mine
                self._windows[("*", minute)] = everyone + 1
        if self.rate_limit is None:
            return not over, {}
        remaining = 0 if over else max(0, self.rate_limit - mine)
        return not over, {"ratelimit-limit": str(self.rate_limit), "ratelimit-remaining": str(remaining), "ratelimit-reset": reset}

    def _logs(self, request: Request, client: Client, version: str) -> Response:
        allowed = {"filter", "select", "limit", "offset"} | ({"all"} if version == "v1" else {"sort"})
        for name, values in request.query.items():
            if name not in allowed:
                return _bad_request(name, f"unsupported query parameter {name!r}")
            if len(values) > 1:
                return _bad_request(name, f"query parameter {name!r} is repeated")
        limit = request.arg("limit", "50") or ""
        offset = request.arg("offset", "0") or ""
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            return _bad_request("limit", f"limit must be an integer between 1 and {MAX_LIMIT}")
        if not offset.isdigit():
            return _bad_request("offset", "offset must be a non-negative integer")
        sort = request.arg("sort", "createdAt desc")
        if sort not in ("createdAt", "createdAt asc", "createdAt desc"):
            return _bad_request("sort", "sort must be createdAt, createdAt asc or createdAt desc")
        select = [s for s in (request.arg("select") or "").split(",") if s]
        unknown = [s for s in select if s not in SELECT_NAMES[version]]
        if unknown:
            return _bad_request("select", f"unsupported select property {unknown[0]!r}")
        try:
            conditions = parse_filter(request.arg("filter") or "", version) if request.arg("filter") is not None else []
        except FilterError as exc:
            return _bad_request("filter", f"invalid filter: {exc}")
        entries, more = self._select(client.workspace, version, conditions, sort != "createdAt asc", request.arg("all"), CAP)
        start = int(offset)
        items = [_project(self._item(e, version), select) for e in entries[start : start + int(limit)]]
        total = len(entries) + self.miscount
        body = {"items": items, "count": len(items), "offset": start, "total": total, "remainingRecords": more}
        return Response.json(body)

    def _visible(self, client: Client, log_id: str, version: str) -> Entry | None:
        entry = self._by_id.get(log_id)
        if entry is None or entry.workspace is not client.workspace:
            return None
        if (entry.id_v1 if version == "v1" else entry.id_v2) != log_id:
            return None
        return entry

    def _one_log(self, request: Request, client: Client, log_id: str) -> Response:
        entry = self._visible(client, log_id, "v2beta1")
        if entry is None:
            return _hpe_error(404, "HPE_GL_ERROR_NOT_FOUND", f"audit log {log_id} not found")
        return Response.json(self._item(entry, "v2beta1"))

    def _detail(self, request: Request, client: Client, log_id: str) -> Response:
        version = "v1" if request.path.startswith("/audit-log/v1/") else "v2beta1"
        entry = self._visible(client, log_id, version)
        if entry is None or entry.detail is None:
            return _hpe_error(404, "HPE_GL_ERROR_NOT_FOUND", f"no details for audit log {log_id}")
        header, body = entry.detail
        kind = "audit_details" if version == "v1" else "/audit-log/log/details"
        return Response.json({"id": log_id, "type": kind, "header": header, "body": list(body)})


def _project(item: dict[str, Any], select: list[str]) -> dict[str, Any]:
    """``id`` and ``type`` plus the selected properties (nested ones keep their nesting)."""
    if not select:
        return item
    out: dict[str, Any] = {"id": item["id"], "type": item["type"]}
    for name in select:
        head, _, rest = name.partition("/")
        if head not in item:
            continue
        if rest:
            value = item[head].get(rest) if isinstance(item[head], dict) else None
            if value is not None:
                out.setdefault(head, {})[rest] = value
        else:
            out[head] = item[head]
    return out


def _hpe_error(status: int, code: str, message: str, issues: list[dict[str, str]] | None = None) -> Response:
    """HPE's error body: four required fields, ``errorDetails`` except on 429."""
    body: dict[str, Any] = {"httpStatusCode": status, "errorCode": code, "message": message, "debugId": uuid.uuid4().hex}
    if status != 429:
        body["errorDetails"] = [{"type": "hpe.greenlake.bad_request", "issues": issues}] if issues else []
    return Response.json(body, status)


def _bad_request(source: str, message: str) -> Response:
    return _hpe_error(400, "HPE_GL_ERROR_BAD_REQUEST", message, [{"source": source, "description": message}])


def _oauth_error(status: int, code: str, description: str) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="token"'} if status == 401 else {}
    return Response.json({"error": code, "error_description": description}, status, headers)
