"""HPE GreenLake audit logs: ``GET /audit-log/{v1|v2beta1}/logs``, OAuth2 client credentials.

Auth: a client-credentials token from the workspace-scoped endpoint
(``{base_url}/authorization/v2/oauth2/{workspace_id}/token``, client id and secret
in the form body) or the legacy SSO endpoint the 2024 blog used (HTTP Basic).
Tokens are workspace-scoped: one source per workspace.

Reading: the range is cut into windows of ``window`` seconds (whole seconds,
half-open: ``createdAt ge 'a' and createdAt lt 'b'``). The configured ``filters``
are data, rendered with single quotes (a ``'`` inside a value is doubled, the
OData convention; HPE does not document escaping). A list becomes ``in (...)``
where the field allows it, split into several queries of at most five
``serviceOffer/id`` values; on an ``eq``-only field it becomes one query per
value. The queries' results are disjoint, so nothing is read twice.

The 10,000 cap: a query never reaches more than 10,000 records. When the first
page of any query of a window says ``remainingRecords`` (or ``total`` reaches
10,000), the window is halved, recursively, until every query of every part
fits; parts are then read in time order with ``offset`` paging, and the cursor
``{"until": <part end>}`` is committed after the last page of each part. The first
page read while probing a window that then had to be split is kept: its records
lead the halves' answers (the API lists by ``createdAt``), so each half is read on
from the offset after them instead of from 0 (only records sharing a millisecond
with the last kept one are read again, as equal times may come in another order). A part
one second wide that still overflows cannot be read completely, and HPE offers
no finer key: the pass stops with a ``SourceError`` naming that second, and the
checkpoint stays before it (nothing is skipped). Dead-lettering a marker and
moving on was rejected: it would move the checkpoint past records nobody read.
The fix is to narrow the source with filters (e.g. one source per category).

Rate limits: 100 requests/min per user and 300/min overall, paced by
token buckets (burst 1) shared by every source in the process with the same
client id (resp. API base URL) at ``headroom`` (default 0.9) of those figures, so
the forwarder never sits exactly at the limit (90/min: one request per 0.67 s);
``ratelimit-*`` headers and 429s block the client id's bucket (see
``forwarder.http``). A 429 that says nothing of when to retry (no
``Retry-After``, no ``ratelimit-reset``) waits a whole quota window (60 s) before
the next try: another consumer of the same client id can hold the quota, and
retrying within the window would only use up the retries.

Details (``details = true``): records with ``hasDetails`` get their
``/detail`` (v1) or ``/details`` (v2beta1) fetched, one request each, within the
same rate limit; they land in the event's ``details.detail``.

Normalization (record → ``AuditEvent``):

==================  ============================  ==========================================
v1                  v2beta1                       AuditEvent
==================  ============================  ==========================================
id, generation      id                            id (v1: SHA-256 of id + generation, since
                                                  v1 records are updated in place;
                                                  details.record_id keeps the id)
createdAt           createdAt                     timestamp
workspace.id        workspace.id                  tenant_id
workspace           workspace.name                tenant_name
.workspaceName
user.username       username                      actor.name; actor.email and
                                                  actor.type "user" when it has an ``@``
additionalInfo      ipAddress                     source.ip when it is an IP address, else
.ipAddress                                        details.ip_address (Elasticsearch would
                                                  refuse the whole document)
category            category                      category: User Activity → authentication,
                                                  User/Customer Management → iam, API
                                                  Gateway → api, other management →
                                                  configuration; login/logout → authentication.
                                                  The vendor's value: details.category
description         description                   message; action (login, logout, create,
                                                  delete, update) and outcome (failure /
                                                  success words, else unknown) from its verbs
region              serviceOffer.region           region
application.id      serviceOffer.{id,name}        details.service_offer
additionalInfo      additionalInfo                target (type deviceType or "server", id
                                                  serverSerial, name serverName) when present;
                                                  details.additional_info
hasDetails          hasDetails                    details.has_details
—                   workspace.type                details.workspace_type
generation,         —                             details.generation, details.updated_at
updatedAt
/detail body        /details body                 details.detail {header, body}
==================  ============================  ==========================================

A record without ``id`` or a parsable ``createdAt`` is refused (dead-lettered).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import requests

from forwarder import jsoncodec
from forwarder.auth.oauth2 import OAuth2ClientCredentials
from forwarder.config import SourceConfig
from forwarder.errors import AuthError, ConfigError, HttpError, RecordError, SourceError
from forwarder.event import Actor, AuditEvent, Endpoint, Target, content_hash
from forwarder.http import HttpClient, RateLimiter, body_excerpt, id_segment, response_json, safe_url, shared_limiter
from forwarder.options import Option, url_problem
from forwarder.secrets import redact
from forwarder.sources.base import Page, Source, per_record, resume_point, time_windows
from forwarder.state import CheckpointStore
from forwarder.timeutil import format_time, now, parse_time

log = logging.getLogger("forwarder.sources.hpe_greenlake")

API = "https://global.api.greenlake.hpe.com"
SSO_TOKEN_URL = "https://sso.common.cloud.hpe.com/as/token.oauth2"
VERSIONS = ("v1", "v2beta1")
#: Most records one query can reach (``total`` never exceeds it).
CAP = 10_000
#: Largest page (``limit``).
MAX_LIMIT = 2000
#: Most queries one window may expand to (list filters multiply).
MAX_QUERIES = 25
#: HPE's quota window (requests per minute): a 429 without a reset hint waits at least this long.
QUOTA_WINDOW = 60.0
#: Key under which a fetched detail rides along with its record until ``normalize``.
DETAIL_KEY = "_forwarder_detail"
_RECORD_ID = re.compile(r"[A-Za-z0-9._~-]{1,256}")  # opaque (e.g. 8RtJaZQBITMTdBbBUxzz); used as a path segment


@dataclass(frozen=True)
class FilterField:
    """One documented filter field: its operators, allowed values, and ``in`` list maximum."""

    ops: tuple[str, ...]
    values: tuple[str, ...] | None = None
    max_in: int | None = None


_TEXT = FilterField(("eq", "contains"))
_BOOL = FilterField(("eq",), values=("true", "false"))
FILTER_FIELDS: dict[str, dict[str, FilterField]] = {
    "v1": {
        "createdAt": FilterField(("lt", "ge")),
        "category": FilterField(("eq", "in")),
        "description": _TEXT,
        "additionalInfo/ipAddress": _TEXT,
        "user/username": _TEXT,
        "workspace/workspaceName": _TEXT,
        "application/id": FilterField(("eq",)),
        "region": FilterField(("eq",)),
        "hasDetails": _BOOL,
    },
    "v2beta1": {
        "createdAt": FilterField(("lt", "ge")),
        "category": FilterField(("eq", "in")),
        "description": _TEXT,
        "ipAddress": _TEXT,
        "username": _TEXT,
        "workspace/name": _TEXT,
        "workspace/type": FilterField(("eq",), values=("STANDALONE", "TENANT", "MSP")),
        "serviceOffer/id": FilterField(("eq", "in"), max_in=5),
        "region": FilterField(("eq",)),
        "hasDetails": _BOOL,
    },
}
SELECT_FIELDS: dict[str, tuple[str, ...]] = {
    "v1": ("additionalInfo", "createdAt", "category", "hasDetails", "workspace/workspaceName", "description", "user/username"),
    "v2beta1": ("serviceOffer", "createdAt", "category", "hasDetails", "workspace", "description", "username", "ipAddress", "additionalInfo"),
}
#: Where each version keeps what normalization and export need.
PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "v1": {
        "user": ("user", "username"), "ip": ("additionalInfo", "ipAddress"), "workspace_name": ("workspace", "workspaceName"),
        "service_id": ("application", "id"), "service_name": ("application", "applicationName"),
        "service_region": ("region",), "region": ("region",),
    },
    "v2beta1": {
        "user": ("username",), "ip": ("ipAddress",), "workspace_name": ("workspace", "name"),
        "service_id": ("serviceOffer", "id"), "service_name": ("serviceOffer", "name"),
        "service_region": ("serviceOffer", "region"), "region": ("serviceOffer", "region"),
    },
}


def quote_value(value: str) -> str:
    """A filter string literal: single quotes, an inner ``'`` doubled."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Clause:
    """One filter clause: ``field op 'v'``, ``contains(field, 'v')`` or ``field in ('a', 'b')``."""

    field: str
    op: str
    values: tuple[str, ...]

    def render(self) -> str:
        if self.op == "contains":
            return f"contains({self.field}, {quote_value(self.values[0])})"
        if self.op == "in":
            return f"{self.field} in ({', '.join(map(quote_value, self.values))})"
        return f"{self.field} {self.op} {quote_value(self.values[0])}"


def render_filter(start: dt.datetime, end: dt.datetime, clauses: list[Clause]) -> str:
    """The ``filter`` parameter for ``[start, end)`` plus ``clauses``."""
    window = [Clause("createdAt", "ge", (format_time(start, 0),)), Clause("createdAt", "lt", (format_time(end, 0),))]
    return " and ".join(c.render() for c in window + clauses)


def plan_queries(filters: dict[str, Any], version: str, where: str) -> list[list[Clause]]:
    """The filter clauses of each query a window needs (ConfigError naming the key if a filter is wrong).

    ``filters`` maps a field to a value (``eq``), a list (any of them) or a table
    ``{op = value}``. Lists expand into disjoint queries; the result is their cross product.
    """
    fields = FILTER_FIELDS[version]
    fixed: list[Clause] = []
    choices: list[list[Clause]] = []
    for name, spec in filters.items():
        key = f"{where}.{name}"
        field = fields.get(name)
        if field is None:
            known = ", ".join(f for f in fields if f != "createdAt")
            raise ConfigError(key, f"unknown filter field for api_version {version} (known: {known})")
        if name == "createdAt":
            raise ConfigError(key, "is set from the time window (lookback, --from/--to); remove it")
        ops = spec if isinstance(spec, dict) else {"in" if isinstance(spec, list) else "eq": spec}
        if not ops:
            raise ConfigError(key, "needs an operator, e.g. {eq = \"...\"}")
        for op, raw in ops.items():
            if op not in ("eq", "contains", "in"):
                raise ConfigError(f"{key}.{op}", "unknown operator (known: eq, contains, in)")
            values = _filter_values(raw, field, f"{key}.{op}" if isinstance(spec, dict) else key, many=op == "in")
            if op == "in" and isinstance(spec, dict) and "in" not in field.ops:
                raise ConfigError(
                    f"{key}.in",
                    f"operator in is not supported on {name} (supported: {', '.join(field.ops)}); "
                    f"a plain list ({name} = [...]) reads each value with its own query",
                )
            if op == "in":
                choices.append(_any_of(name, field, values))
            elif op not in field.ops:
                raise ConfigError(f"{key}.{op}", f"operator {op} is not supported on {name} (supported: {', '.join(field.ops)})")
            else:
                fixed.append(Clause(name, op, values))
    queries = [fixed + list(combo) for combo in itertools.product(*choices)]
    if len(queries) > MAX_QUERIES:
        raise ConfigError(where, f"the list filters expand to {len(queries)} queries per window (at most {MAX_QUERIES}); use fewer values or several sources")
    return queries


def _any_of(name: str, field: FilterField, values: tuple[str, ...]) -> list[Clause]:
    """Disjoint clauses that together match any of ``values``."""
    if "in" in field.ops:
        size = field.max_in or len(values)
        return [Clause(name, "in", values[i : i + size]) for i in range(0, len(values), size)]
    return [Clause(name, "eq", (v,)) for v in values]


def _filter_values(raw: Any, field: FilterField, key: str, many: bool) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not many and isinstance(raw, list):
        raise ConfigError(key, "takes one value, not a list")
    if not items:
        raise ConfigError(key, "is an empty list")
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) and field.values == ("true", "false"):
            item = "true" if item else "false"
        if not isinstance(item, str) or not item:
            raise ConfigError(key, f"values must be non-empty strings, not {type(item).__name__} {item!r}"[:120])
        if field.values is not None and item not in field.values:
            raise ConfigError(key, f"{item!r} is not one of {', '.join(field.values)}"[:160])
        if item not in out:  # a repeated value would read the same records twice
            out.append(item)
    return tuple(out)


def _path(record: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` in nested dicts, or None where the record has something else."""
    value: Any = record
    try:
        for part in path:
            value = value[part]
    except (KeyError, TypeError, IndexError):
        return None
    return value


def _whole_second(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


# -- normalization tables ----------------------------------------------------
_CATEGORY = {
    "user activity": "authentication",
    "user management": "iam",
    "customer management": "iam",
    "identity and access management": "iam",
    "api gateway": "api",
}
_CATEGORY_WORDS = (
    (("login", "authentication", "sso", "session"), "authentication"),
    (("user", "role", "permission", "access", "identity", "authorization", "tenant"), "iam"),
    (("api",), "api"),
    (("network", "firewall", "vpn"), "network"),
)
_VERBS = {
    "logout": ("logged out", "log out", "logout", "signed out"),
    "login": ("logged in", "log in", "login", "signed in"),
    "delete": ("deleted", "removed", "archived", "revoked", "unassigned", "deprovisioned", "unclaimed"),
    "create": ("created", "added", "invited", "provisioned", "generated", "registered", "claimed", "onboarded"),
    "update": ("updated", "changed", "modified", "assigned", "enabled", "disabled", "renamed", "upgraded", "regenerated", "reset"),
}
_VERB_OF = {phrase: action for action, phrases in _VERBS.items() for phrase in phrases}
# One pass over the lower-cased text; the first verb in it wins.
_ACTION = re.compile(r"\b(?:" + "|".join(sorted(_VERB_OF, key=len, reverse=True)) + r")\b")
_FAILURE = re.compile(r"\b(?:failed|failure|denied|unsuccessful|invalid|rejected|error)\b")
_SUCCESS = re.compile(r"\b(?:successful|successfully|succeeded|success)\b")


def event_category(vendor_category: str | None, action: str | None) -> str:
    """The ``AuditEvent`` category of a GreenLake record."""
    if action in ("login", "logout"):
        return "authentication"
    text = (vendor_category or "").strip().lower()
    if text in _CATEGORY:
        return _CATEGORY[text]
    words = set(text.split())
    for needles, category in _CATEGORY_WORDS:
        if words.intersection(needles):
            return category
    return "configuration"  # GreenLake audit logs record management-plane changes


def action_of(description: str) -> str | None:
    """The first verb of a description: login, logout, create, delete, update (or None)."""
    m = _ACTION.search(description.lower())
    return _VERB_OF[m.group()] if m else None


def outcome_of(text: str) -> str:
    """failure / success when the text says so, else unknown."""
    text = text.lower()
    if _FAILURE.search(text):
        return "failure"
    if _SUCCESS.search(text):
        return "success"
    return "unknown"


@dataclass(frozen=True)
class _Lead:
    """Records known to lead one query's results for a part, in the API's order.

    They were read on the first page of a wider window that had to be split. Everything
    sorting before the last of them is in the list, so the part's read can start at
    ``offset = len(records)``; ``complete`` means they are all of the part's records.
    """

    records: list[dict[str, Any]]
    complete: bool = False

    @staticmethod
    def split(records: list[dict[str, Any]], complete: bool, mid: dt.datetime, ascending: bool) -> tuple["_Lead", "_Lead"]:
        """The leads of ``[lo, mid)`` and ``[mid, hi)`` from the leading records of ``[lo, hi)``.

        Nothing is reused unless every record has a time and they are in the API's
        documented order (a wrong order would skip records). The trailing records sharing
        the last one's time are dropped: records with equal times may come in another
        order in the half's own answer.
        """
        timed: list[tuple[dict[str, Any], dt.datetime]] = []
        for record in records:
            t = _created(record)
            if t is None or (timed and ((t < timed[-1][1]) if ascending else (t > timed[-1][1]))):
                return _Lead([]), _Lead([])
            timed.append((record, t))
        low = [(r, t) for r, t in timed if t < mid]
        high = [(r, t) for r, t in timed if t >= mid]
        first, second = (low, high) if ascending else (high, low)  # the half the API lists first
        leads = (_Lead.of(first, complete or bool(second)), _Lead.of(second, complete))  # a record of the other half follows all of it
        return leads if ascending else (leads[1], leads[0])

    @staticmethod
    def of(timed: list[tuple[dict[str, Any], dt.datetime]], complete: bool) -> "_Lead":
        """A lead from time-ordered records; an incomplete one loses the records tied with its last."""
        if not complete and timed:
            last = timed[-1][1]
            timed = [(r, t) for r, t in timed if t != last]
        return _Lead([r for r, _ in timed], complete)


def _created(record: Any) -> dt.datetime | None:
    try:
        return parse_time(record["createdAt"])
    except (TypeError, KeyError, ValueError):
        return None


class _Quota:
    """Both GreenLake quotas as one limiter: the client id's and the API's overall one."""

    def __init__(self, per_client: RateLimiter, overall: RateLimiter) -> None:
        self.per_client = per_client
        self.overall = overall

    def acquire(self) -> None:
        self.per_client.acquire()
        self.overall.acquire()

    def block_for(self, seconds: float) -> None:
        """A 429 or an exhausted ``ratelimit-remaining`` concerns this client id."""
        self.per_client.block_for(seconds)


class GreenLakeSource(Source):
    """Audit logs of one HPE GreenLake workspace."""

    TYPE = "hpe_greenlake"
    LEDGER = True
    VENDOR = "hpe_greenlake"
    PRODUCT = "audit"
    OPTIONS = {
        "client_id": Option("str", help="personal API client id (the workspace's API client)"),
        "client_secret": Option("secret", help="its secret, as env:NAME or file:PATH"),
        "workspace_id": Option("str", None, "workspace id; required by the workspace-scoped token endpoint"),
        "token_url": Option(
            "str", "workspace",
            "'workspace' (<base_url>/authorization/v2/oauth2/<workspace_id>/token), 'sso' (the legacy "
            f"{SSO_TOKEN_URL}) or a full URL",
        ),
        "client_auth": Option("str", "auto", "how the client authenticates to the token endpoint: body, basic, or auto (basic for sso)", choices=("auto", "body", "basic")),
        "base_url": Option("secure_url", API, "API base URL"),
        "api_version": Option("str", "v1", "v1 (GA) or v2beta1", choices=VERSIONS),
        "filters": Option("dict", {}, "filter fields of the api_version: value (eq), list (any of), or {eq|contains|in = ...}"),
        "select": Option("list", [], "properties to return (default: the whole record); createdAt is always added; a record that comes back without id is dead-lettered"),
        "page_size": Option("int", MAX_LIMIT, "records per request (limit)", minimum=1, maximum=MAX_LIMIT),
        "window": Option("duration", 86400.0, "longest time span one query asks for; windows over the 10,000 cap are halved", minimum=2),
        "details": Option("bool", False, "fetch /detail(s) of records with hasDetails (one request each)"),
        "rate_limit": Option("float", 100.0, "requests per minute per client id (HPE: 100)", minimum=0.1),
        "rate_limit_overall": Option("float", 300.0, "requests per minute to this API from this process (HPE: 300)", minimum=0.1),
        "headroom": Option("float", 0.9, "share of rate_limit and rate_limit_overall actually used, so the forwarder never sits exactly at HPE's limit (0.9: 90 of 100 per minute)", minimum=0.1, maximum=1.0),
    }

    EXPORT_COLUMNS = (
        "id", "type", "Username", "Workspace ID", "Workspace Name", "Category", "Application ID",
        "Application Name", "Description", "Generation", "Created At", "Updated At", "IP Address",
        "Has Details", "Region", "Workspace Type", "Additional Info", "Detail", "Event ID",
    )

    @classmethod
    def validate_options(cls, options: dict[str, Any], where: str) -> None:
        """Filters and select must fit the API version; the token endpoint needs what it names."""
        version = options["api_version"]
        plan_queries(options["filters"], version, f"{where}.filters")
        for name in options["select"]:
            if name not in SELECT_FIELDS[version]:
                raise ConfigError(f"{where}.select", f"{name!r} cannot be selected in {version} (known: {', '.join(SELECT_FIELDS[version])})"[:200])
        token_url = options["token_url"]
        if token_url == "workspace" and not options["workspace_id"]:
            raise ConfigError(f"{where}.workspace_id", "is required with token_url = \"workspace\" (or set token_url = \"sso\" or a URL)")
        problem = url_problem(token_url, secure=True) if token_url not in ("workspace", "sso") else None
        if problem:
            raise ConfigError(f"{where}.token_url", f"must be 'workspace', 'sso' or a token URL: {problem}")

    def __init__(self, config: SourceConfig, store: CheckpointStore, work_dir: Any) -> None:
        super().__init__(config, store, work_dir)
        o = self.options
        self.version: str = o["api_version"]
        self.paths = PATHS[self.version]
        base = o["base_url"].rstrip("/")
        self.logs_url = f"{base}/audit-log/{self.version}/logs"
        self.queries = plan_queries(o["filters"], self.version, "filters")
        self.select: list[str] = list(dict.fromkeys(o["select"] + ["createdAt"])) if o["select"] else []
        self.page_size: int = o["page_size"]
        self.window = float(max(2, round(o["window"])))  # whole seconds: the filter's times have no fraction
        self.details: bool = o["details"]
        token_url = {"workspace": f"{base}/authorization/v2/oauth2/{o['workspace_id']}/token", "sso": SSO_TOKEN_URL}.get(o["token_url"], o["token_url"])
        client_auth = o["client_auth"] if o["client_auth"] != "auto" else ("basic" if o["token_url"] == "sso" else "body")
        self.auth = OAuth2ClientCredentials(
            token_url, o["client_id"], o["client_secret"], client_auth=client_auth,
            what="hpe_greenlake token endpoint", settings=config.http,
        )
        per_client, overall = o["rate_limit"] * o["headroom"], o["rate_limit_overall"] * o["headroom"]
        quota = _Quota(
            shared_limiter(f"hpe_greenlake:client:{o['client_id']}", per_client, burst=1),
            shared_limiter(f"hpe_greenlake:api:{base}:{overall:g}", overall, burst=1),
        )
        self.http = HttpClient("hpe_greenlake", config.http, auth=self.auth, limiter=quota, quota_window=QUOTA_WINDOW)  # type: ignore[arg-type]

    # -- reading ---------------------------------------------------------------
    def fetch(self, cursor: dict[str, Any] | None, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        begin, stop = _whole_second(resume_point(cursor, start)), _whole_second(end)
        for a, b in time_windows(begin, stop, self.window):
            yield from self._window(a, b)

    def _window(self, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        """Bisect ``[start, end)`` until every query fits under the cap; read the parts in time order.

        The first pages read while probing a window that turns out too big are not thrown
        away: they lead the halves' results (``_Lead``), so each half's read starts after them.
        """
        todo = [(start, end, [_Lead([]) for _ in self.queries])]
        while todo:
            lo, hi, leads = todo.pop()
            firsts, overflowing = self._probe(lo, hi, leads)
            if overflowing is None:
                yield from self._part(lo, hi, firsts)
                continue
            width = int((hi - lo).total_seconds())
            if width <= 1:
                raise SourceError(
                    f"hpe_greenlake: more than {CAP:,} records match [{render_filter(lo, hi, overflowing)}] within one second; "
                    f"the API cannot return them all, so the pass stops before {format_time(lo, 0)} (nothing skipped). "
                    "Narrow this source with filters (e.g. one source per category) to read past it"
                )
            mid = lo + dt.timedelta(seconds=width // 2)
            log.info("hpe_greenlake: %s..%s holds over %d records; splitting it in two", format_time(lo, 0), format_time(hi, 0), CAP)
            ascending = self.version == "v2beta1"  # v1 lists newest first
            halves = [
                _Lead.split(firsts[i]["items"] if i < len(firsts) else lead.records, lead.complete, mid, ascending)
                for i, lead in enumerate(leads)
            ]
            todo += [(mid, hi, [h[1] for h in halves]), (lo, mid, [h[0] for h in halves])]

    def _probe(self, lo: dt.datetime, hi: dt.datetime, leads: list["_Lead"]) -> tuple[list[dict[str, Any]], list[Clause] | None]:
        """The first page of every query (read after its lead), or up to the first query that overflows the cap."""
        firsts = []
        for clauses, lead in zip(self.queries, leads):
            if lead.complete:
                firsts.append({"items": lead.records, "total": len(lead.records)})
                continue
            body = self._list(clauses, lo, hi, len(lead.records))
            body["items"] = lead.records + body["items"]
            firsts.append(body)
            if body.get("remainingRecords") is True or body["total"] >= CAP:
                return firsts, clauses
        return firsts, None

    def _part(self, lo: dt.datetime, hi: dt.datetime, firsts: list[dict[str, Any]]) -> Iterator[Page]:
        """Pages of one part; only the last carries the cursor ``{"until": hi}`` and closes ``[lo, hi)``
        in the coverage ledger, with the sum of the queries' ``total`` as the vendor's count."""
        chunks = self._chunks(lo, hi, firsts)
        previous = next(chunks, Page([], None, lo))
        for chunk in chunks:
            yield previous
            previous = chunk
        previous.cursor, previous.position = {"until": format_time(hi, 0)}, hi
        previous.covers, previous.vendor_count = (lo, hi), sum(body["total"] for body in firsts)
        yield previous

    def _chunks(self, lo: dt.datetime, hi: dt.datetime, firsts: list[dict[str, Any]]) -> Iterator[Page]:
        for clauses, body in zip(self.queries, firsts):
            offset = 0
            while True:
                items = body["items"]
                if items:
                    rejected: list[tuple[str, Any]] = []
                    enriched = [record for record, _ in per_record(items, self._enrich, rejected, f"hpe_greenlake: cannot read the record's {self._detail_kind}")]
                    yield Page(enriched, None, lo, rejected=rejected)
                offset += len(items)
                if not items or offset >= body["total"]:
                    break
                body = self._list(clauses, lo, hi, offset)

    def _list(self, clauses: list[Clause], lo: dt.datetime, hi: dt.datetime, offset: int, limit: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"filter": render_filter(lo, hi, clauses), "limit": limit or self.page_size, "offset": offset}
        if self.version == "v2beta1":
            params["sort"] = "createdAt asc"
        if self.select:
            params["select"] = ",".join(self.select)
        body = self._get(self.logs_url, params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list) or not isinstance(body.get("total"), int):
            raise SourceError(f"hpe_greenlake: GET {safe_url(self.logs_url)} returned an unexpected body (no items/total)")
        return body

    def _get(self, url: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False) -> Any:
        """GET a JSON body; HPE's error body becomes one line (errorCode, message, debugId).

        The filter is sent with ``%20`` for spaces (not ``+``). With ``missing_ok``, a 404 gives None.
        A refused token or a missing permission names what to check.
        """
        full = f"{url}?{urlencode(params, quote_via=quote)}" if params else url
        try:
            resp = self.http.request("GET", full, ok=(200, 400, 404))
        except AuthError as exc:
            if exc.what != self.http.what:  # the token endpoint's refusal says enough
                raise
            raise AuthError(exc.what, exc.method, exc.url, exc.status, _auth_hint(exc.status, exc.detail)) from None
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code != 200:
            raise HttpError("hpe_greenlake", "GET", safe_url(url), resp.status_code, _hpe_error(resp))
        return response_json(resp, "hpe_greenlake")

    @property
    def _detail_kind(self) -> str:
        return "detail" if self.version == "v1" else "details"

    def _enrich(self, record: Any) -> None:
        """Attach the record's /detail(s) when ``details`` is on and it has some."""
        if not self.details or not isinstance(record, dict):
            return  # normalize dead-letters a record that is no object
        rid = record.get("id")
        if record.get("hasDetails") is True and isinstance(rid, str) and rid:
            kind = self._detail_kind
            try:
                segment = id_segment(rid, "hpe_greenlake: record id", _RECORD_ID, "an opaque id (letters, digits, '.', '_', '~', '-')")
            except SourceError as exc:
                record[DETAIL_KEY] = {"missing": str(exc)}
                return
            detail = self._get(f"{self.logs_url}/{segment}/{kind}", missing_ok=True)
            record[DETAIL_KEY] = detail if isinstance(detail, dict) else {"missing": f"{kind} not found"}

    def check(self) -> str:
        """Fetch a token and ask for one record of the last hour (reads are not consuming)."""
        hi = _whole_second(now())
        body = self._list(self.queries[0], hi - dt.timedelta(hours=1), hi, 0, limit=1)
        more = "+" if body.get("remainingRecords") else ""
        return f"api {self.version}: token ok; {body['total']}{more} records in the last hour"

    def close(self) -> None:
        self.http.close()
        self.auth.close()

    # -- mapping -----------------------------------------------------------------
    def normalize(self, record: dict[str, Any]) -> AuditEvent:
        raw, detail = record, None
        if DETAIL_KEY in record:
            raw = {k: v for k, v in record.items() if k != DETAIL_KEY}
            detail = record[DETAIL_KEY]
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid:
            raise RecordError("record has no id")
        if "createdAt" not in raw:
            raise RecordError("record has no createdAt")
        v = self._values(raw)
        description = _text(raw.get("description"))
        user = _text(v["user"])
        is_person = user is not None and "@" in user
        ip, bad_ip = _ip(v["ip"])
        workspace = _table(raw.get("workspace"))
        info = raw.get("additionalInfo") if isinstance(raw.get("additionalInfo"), dict) else None
        generation = raw.get("generation")
        action = action_of(description or "")
        said = description or ""
        if isinstance(detail, dict) and isinstance(detail.get("body"), list):
            said += " " + " ".join(map(str, detail["body"]))
        service = {k: value for k, value in (("id", v["service_id"]), ("name", v["service_name"]), ("region", v["service_region"])) if value is not None}
        extras = {
            "record_id": rid, "category": raw.get("category"),
            "service_offer": service or None,
            "workspace_type": workspace.get("type"), "additional_info": info, "has_details": raw.get("hasDetails"),
            "generation": generation, "updated_at": raw.get("updatedAt"), "ip_address": bad_ip, "detail": detail,
        }
        return AuditEvent.build(
            vendor=self.VENDOR,
            product=self.PRODUCT,
            raw=raw,
            timestamp=raw["createdAt"],
            vendor_id=content_hash(rid, generation) if self.version == "v1" and generation is not None else rid,
            tenant_id=_text(workspace.get("id")),
            tenant_name=_text(v["workspace_name"]),
            action=action,
            outcome=outcome_of(said),
            category=event_category(_text(raw.get("category")), action),
            actor=Actor(name=user, email=user if is_person else None, type="user" if is_person else None),
            source=Endpoint(ip=ip),
            target=_target(info),
            region=_text(v["region"]),
            message=description,
            details={k: value for k, value in extras.items() if value is not None},
        )

    def _values(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The version-specific fields of a record, by their common names (see ``PATHS``)."""
        return {name: _path(raw, path) for name, path in self.paths.items()}

    def export_row(self, event: AuditEvent) -> dict[str, Any]:
        """The blog's spreadsheet columns (application = service offer in v2beta1), and a few more."""
        raw = event.raw
        v = self._values(raw)
        workspace = _table(raw.get("workspace"))
        return {
            "id": raw.get("id"),
            "type": raw.get("type"),
            "Username": v["user"],
            "Workspace ID": workspace.get("id"),
            "Workspace Name": v["workspace_name"],
            "Category": raw.get("category"),
            "Application ID": v["service_id"],
            "Application Name": v["service_name"],
            "Description": raw.get("description"),
            "Generation": raw.get("generation"),
            "Created At": raw.get("createdAt"),
            "Updated At": raw.get("updatedAt"),
            "IP Address": v["ip"],
            "Has Details": raw.get("hasDetails"),
            "Region": v["region"],
            "Workspace Type": workspace.get("type"),
            "Additional Info": raw.get("additionalInfo"),
            "Detail": event.details.get("detail"),
            "Event ID": event.id,
        }


def _ip(value: Any) -> tuple[str | None, str | None]:
    """(source ip, unparsable value): vendor IPs are opaque strings and may be invalid."""
    if not isinstance(value, str) or not value:
        return None, None
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
    except OSError:
        return None, value
    return value, None


def _text(value: Any) -> str | None:
    """A non-empty string, or None (vendor fields may be missing or of another type)."""
    return value if isinstance(value, str) and value else None


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _target(info: dict[str, Any] | None) -> Target:
    if not info:
        return Target()
    name, serial = info.get("serverName"), info.get("serverSerial")
    if name is None and serial is None:
        return Target()
    return Target(type=info.get("deviceType") or "server", id=serial, name=name)


def _hpe_error(resp: requests.Response) -> str:
    """``errorCode: message (debugId …)`` from HPE's error body, or a short excerpt."""
    return _error_text(resp.content) or body_excerpt(resp)


def _error_text(body: bytes | str) -> str | None:
    """``errorCode: message (debugId …)`` when ``body`` is HPE's error body."""
    try:
        data = jsoncodec.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not ("message" in data or "errorCode" in data):
        return None
    text = f"{data.get('errorCode', 'error')}: {data.get('message', '')}"
    if data.get("debugId"):
        text += f" (debugId {data['debugId']})"
    return redact(text)[:400]


def _auth_hint(status: int | None, detail: str) -> str:
    """HPE's reason for a refused API call (``detail`` is the body excerpt) and what to check."""
    reason = _error_text(detail) or detail
    if status == 401:
        return f"{reason}; a freshly issued token was refused: check that the API client still exists and belongs to workspace_id"
    return f"{reason}; the API client's user needs a role with ccs.audit-trail.view (Observer is enough) in this workspace"
