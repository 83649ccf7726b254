"""Crusoe Cloud audit logs: ``GET /{version}/organizations/{org}/audit-logs``, HMAC-signed.

Reading: the range is cut into windows of ``window`` seconds; each window is
asked for with ``start_time``/``end_time`` and every configured filter (lists
sent comma-joined), then paged with ``next_token`` until the next page token is
empty. Every page is signed again (see ``forwarder.auth.crusoe_hmac``). Records
older than Crusoe's 90-day retention cannot be read, so a range reaching further
back starts at the retention edge (with a warning).

Checkpoint: ``{"until": <window end>, "seen": [...]}`` after the last page of a
window; pages inside a window commit nothing, so a crash re-reads at most one
window. Whether Crusoe's time bounds are inclusive, and which record time they
compare, is not documented: each window after the first reaches ``overlap``
seconds back, and records already delivered at the previous edge (their ids are
kept in ``seen``) are dropped there.

Records have no id: the event id is a SHA-256 of the composite
(organization, start, end, actor id, action, detail, target type, sorted target
ids, client_ip, result, surface), computed from normalized values so that the
string/array drift of list fields does not change it.

Normalization (``LogEntry`` → ``AuditEvent``):

=====================  ==============================================================
AuditEvent             Crusoe record
=====================  ==============================================================
timestamp              ``start_time`` (request start; ``end_time`` → details.end_time)
tenant_id / _name      ``organization_id`` (else the configured one) / ``organization_name``
action                 ``action`` (``Create``, ``Start``…)
outcome                ``result``: 2xx reason phrases (``OK``, ``Created``…) or 2xx codes →
                       success; 4xx/5xx phrases or codes, or a non-empty ``error_message``
                       → failure; anything else → unknown
category               ``Login``/``Logout`` actions → authentication; IAM target types
                       (users, keys, tokens, roles…) → iam; network target types (VPC,
                       subnet, firewall, IP…) → network; everything else → configuration
actor                  id ``actor_id``, name ``actor_email`` (else ``actor_id``),
                       email ``actor_email``, type ``actor_type`` (as sent)
source.ip / .port      ``client_ip`` split: ``10.1.2.3:443``, ``[2001:db8::1]:443``, or a
                       bare address; a value that is no IP is kept whole as source.ip
                       (the ECS mapping then files it under source.address)
target                 type ``target_type``, id first of ``target_ids``, name first of
                       ``target_names`` (all of them in details)
region                 first of ``locations``
message                "<actor> <action>[ (<detail>)] <target type> <names> via <surface>:
                       <result>[ - <error>]"
details                surface, action_detail, error_message, result, end_time,
                       project_id, project_name (each left out when empty), locations,
                       target_ids, target_names (always lists, whether sent as arrays or
                       as ``"[a,b]"`` strings)
=====================  ==============================================================

A record without a parsable ``start_time`` or without ``action`` is refused
(dead-lettered).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from http import HTTPStatus
from typing import Any, Iterator

from forwarder import coverage, jsoncodec
from forwarder.auth.crusoe_hmac import CrusoeHmacAuth, decode_key
from forwarder.config import SourceConfig
from forwarder.errors import AuthError, ConfigError, RecordError, SourceError
from forwarder.event import Actor, AuditEvent, Endpoint, Target, content_hash
from forwarder.http import HttpClient, response_json, shared_limiter
from forwarder.netaddr import split_address
from forwarder.options import Option
from forwarder.secrets import Secret
from forwarder.sources.base import Page, Source, per_record, resume_point, time_windows
from forwarder.state import CheckpointStore
from forwarder.timeutil import format_time, iso, now, parse_time

log = logging.getLogger("forwarder.sources.crusoe")

RETENTION = dt.timedelta(days=90)
#: The documented array filters, each sent as one comma-joined parameter.
FILTERS = (
    "project_ids", "actions", "actor_ids", "actor_emails", "actor_types", "target_ids",
    "target_types", "target_names", "locations", "results", "results_not", "surfaces",
)
_UUID = re.compile(r"^[0-9A-Za-z]{8}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{12}$")
_VERSION = re.compile(r"^v\d+(?:(?:alpha|beta)\d+)?$")

_SUCCESS = frozenset(s.phrase.lower() for s in HTTPStatus if 200 <= s.value < 300) | {"success", "succeeded"}
_FAILURE = frozenset(s.phrase.lower() for s in HTTPStatus if s.value >= 400) | {"failure", "failed", "error"}
_IAM_TARGETS = frozenset(
    "user useraccesstoken accesstoken apikey apitoken serviceaccount role rolebinding group "
    "sshkey publickey invite invitation organizationmember projectmember membership policy".split()
)
_NETWORK_TARGETS = frozenset(
    "vpcnetwork vpcsubnet vpcfirewallrule firewallrule network subnet loadbalancer ipaddress "
    "publicip elasticip natgateway".split()
)
_AUTH_ACTIONS = frozenset({"login", "logout", "signin", "signout", "authenticate"})


def _check_org(value: str) -> str | None:
    return None if _UUID.match(value) else "must be the organization id (a UUID)"


def _check_key(value: Secret) -> str | None:
    try:
        decode_key(value.reveal())
    except ValueError as exc:
        return str(exc)
    return None


class CrusoeSource(Source):
    """Crusoe Cloud organization audit logs."""

    TYPE = "crusoe"
    LEDGER = True
    VENDOR = "crusoe"
    PRODUCT = "audit"
    OPTIONS = {
        "organization_id": Option("str", help="organization id (UUID)", check=_check_org),
        "access_key_id": Option("str", help="API access key id"),
        "secret_key": Option("secret", help="API secret key, e.g. env:CRUSOE_SECRET_KEY", check=_check_key),
        "base_url": Option("secure_url", "https://api.crusoecloud.com", "API host (https://api.cloud.crusoe.ai also serves it)"),
        "api_version": Option("str", "v1alpha5", "API version prefix (v1alpha5 or v1); part of the signed path",
                              check=lambda v: None if _VERSION.match(v) else "must look like v1 or v1alpha5"),
        "limit": Option("int", 1000, "records per page", minimum=1, maximum=100_000),
        "window": Option("duration", 3600.0, "time span asked for per request series", minimum=10),
        "overlap": Option("duration", 5.0, "how far each window reaches back (bounds are undocumented)", minimum=0, maximum=3600),
        **{name: Option("list", [], f"only these {name.replace('_', ' ')} (sent comma-joined)") for name in FILTERS},
    }

    EXPORT_COLUMNS = Source.EXPORT_COLUMNS + ("project", "surface", "result", "client_port")

    @classmethod
    def validate_options(cls, options: dict[str, Any], where: str) -> None:
        """Cross-field checks: the window must be wider than the overlap; list members are strings without commas."""
        if options["window"] <= 2 * options["overlap"]:
            raise ConfigError(f"{where}.window", "must be more than twice the overlap")
        for name in FILTERS:
            for member in options[name]:
                if not isinstance(member, str) or not member:
                    raise ConfigError(f"{where}.{name}", "must be a list of non-empty strings")
                if "," in member:
                    raise ConfigError(f"{where}.{name}", "values cannot contain a comma (Crusoe takes the list comma-joined)")

    def __init__(self, config: SourceConfig, store: CheckpointStore, work_dir: Any) -> None:
        super().__init__(config, store, work_dir)
        o = self.options
        self.org_id: str = o["organization_id"]
        self.path = f"/{o['api_version']}/organizations/{self.org_id}/audit-logs"
        self.url = o["base_url"].rstrip("/") + self.path
        self.overlap = dt.timedelta(seconds=o["overlap"])
        self.filters = [(name, ",".join(o[name])) for name in FILTERS if o[name]]
        self.http = HttpClient(
            "crusoe",
            config.http,
            auth=CrusoeHmacAuth(o["access_key_id"], o["secret_key"]),
            limiter=shared_limiter(f"crusoe:{o['access_key_id']}"),
        )

    # -- reading -----------------------------------------------------------
    def fetch(self, cursor: dict[str, Any] | None, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        """Pages of each window of ``[cursor or start, end)``; the last page of a window carries the cursor."""
        since = resume_point(cursor, start)
        floor = now() - RETENTION + dt.timedelta(minutes=1)
        if since < floor:
            log.warning("source %s: Crusoe keeps audit logs for 90 days; reading from %s", self.name, format_time(floor, 0))
            coverage.note_retention(self.store, self.name, since, floor, RETENTION.days)
            since = floor
        seen = set((cursor or {}).get("seen") or ())
        resumed = bool(cursor and cursor.get("until"))
        for a, b in time_windows(since, end, self.options["window"]):
            reach = a - self.overlap if resumed or a > since else a
            edge = b - self.overlap
            next_seen: set[str] = set()

            def place(record: Any) -> tuple[str | None, bool]:
                """(id to remember at the window edge or None, whether it was delivered at the previous edge)."""
                if not isinstance(record, dict):
                    return None, False  # normalize dead-letters it with the reason
                at_edge = _time(record, "end_time", b) >= edge
                early = bool(seen) and _time(record, "start_time", a) <= a
                rid = self.record_id(record) if at_edge or early else ""
                return (rid if at_edge else None), early and rid in seen

            for records, last in self._pages(reach, b):
                kept, rejected = [], []
                for record, (edge_id, repeated) in per_record(records, place, rejected, "crusoe: cannot place the record in its window"):
                    if edge_id is not None:  # even when dropped below: a window narrower than the overlap reaches back past it
                        next_seen.add(edge_id)
                    if not repeated:  # else delivered at the previous edge
                        kept.append(record)
                if last:
                    yield Page(kept, {"until": format_time(b, 6), "seen": sorted(next_seen)}, b, covers=(a, b), rejected=rejected)
                else:
                    yield Page(kept, None, a, rejected=rejected)
            seen = next_seen

    def _pages(self, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[list[Any], bool]]:
        """``(items, is_last)`` for every page of one window, following ``next_page_token``."""
        params = [("start_time", format_time(start, 3)), ("end_time", format_time(end, 3)), ("limit", str(self.options["limit"]))]
        params += self.filters
        token = ""
        used: set[str] = set()
        while True:
            body = self._get(params + ([("next_token", token)] if token else []))
            token = body.get("next_page_token") or ""
            if token in used:
                raise SourceError(f"crusoe: the API returned the same next_page_token twice for {format_time(start, 0)}..{format_time(end, 0)}")
            used.add(token)
            yield body["items"], not token
            if not token:
                return

    def _get(self, params: list[tuple[str, str]]) -> dict[str, Any]:
        """One signed GET of the audit-log endpoint; errors become one explanatory line."""
        try:
            resp = self.http.request("GET", self.url, params=params)
        except AuthError as exc:
            raise AuthError(exc.what, exc.method, exc.url, exc.status, _auth_hint(exc.status, exc.detail)) from None
        body = response_json(resp, "crusoe")
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise SourceError(f"crusoe: GET {self.path} returned JSON without an 'items' list")
        return body

    def check(self) -> str:
        """One signed request for the last hour, one record at most (nothing is consumed)."""
        end = now()
        body = self._get([("end_time", format_time(end, 3)), ("limit", "1"), ("start_time", format_time(end - dt.timedelta(hours=1), 3))])
        name = next((i.get("organization_name") for i in body["items"] if isinstance(i, dict)), None)
        return f"signed request accepted for organization {self.org_id}" + (f" ({name})" if name else "")

    def close(self) -> None:
        """Release the HTTP session."""
        self.http.close()

    def export_row(self, event: AuditEvent) -> dict[str, Any]:
        """The common columns plus the ones a Crusoe reader filters by."""
        d = event.details
        return {
            **super().export_row(event),
            "project": d.get("project_name") or d.get("project_id"),
            "surface": d.get("surface"),
            "result": d.get("result"),
            "client_port": event.source.port,
        }

    # -- mapping -----------------------------------------------------------
    def record_id(self, record: dict[str, Any]) -> str:
        """The composite deterministic id of a record (normalized, so list-field drift does not change it)."""
        return self._composite(record, _time_text(record.get("start_time")), as_list(record.get("target_ids"), "target_ids"))

    def _composite(self, record: dict[str, Any], start: Any, target_ids: list[str]) -> str:
        return content_hash(
            record.get("organization_id") or self.org_id,
            start,
            _time_text(record.get("end_time")),
            record.get("actor_id"),
            record.get("action"),
            record.get("action_detail") or "",
            record.get("target_type") or "",
            sorted(target_ids),
            record.get("client_ip") or "",
            record.get("result"),
            record.get("surface"),
        )

    def normalize(self, record: dict[str, Any]) -> AuditEvent:
        """Map one ``LogEntry`` (see the table in the module docstring)."""
        if not isinstance(record, dict):
            raise RecordError(f"an audit-log item must be an object, not {type(record).__name__}")
        get = record.get
        action = get("action")
        if not action or not isinstance(action, str):
            raise RecordError("record has no action")
        start = get("start_time")
        try:
            timestamp = parse_time(start)
        except ValueError:
            raise RecordError(f"record has no valid start_time ({str(start)[:40]!r})") from None
        target_ids = as_list(get("target_ids"), "target_ids")
        target_names = as_list(get("target_names"), "target_names")
        locations = as_list(get("locations"), "locations")
        email = get("actor_email") or None
        actor_id = get("actor_id") or None
        result = str(get("result") or "")
        error = get("error_message") or ""
        surface = get("surface") or None
        detail = get("action_detail") or ""
        target_type = get("target_type") or None
        if target_type is not None and not isinstance(target_type, str):
            raise RecordError(f"target_type is a {type(target_type).__name__}, not a string")
        details: dict[str, Any] = {}  # the keys in this order, each left out when empty
        if surface is not None:
            details["surface"] = surface
        if detail:
            details["action_detail"] = detail
        if error:
            details["error_message"] = error
        if result:
            details["result"] = result
        for key in ("end_time", "project_id", "project_name"):
            value = get(key)
            if value:
                details[key] = value
        details["locations"] = locations
        details["target_ids"] = target_ids
        details["target_names"] = target_names
        client = get("client_ip")
        ip, port = split_address(client)
        if ip is None and client and isinstance(client, str):
            ip = client.strip()
        message = f"{email or actor_id or 'unknown actor'} {action}"
        if detail:
            message += f" ({detail})"
        if target_type:
            message += f" {target_type}"
        if target_names:
            message += " " + ", ".join(target_names)
        if surface:
            message += f" via {surface}"
        if result:
            message += f": {result}"
        if error:
            message += f" - {error}"
        return AuditEvent.build(
            vendor=self.VENDOR,
            product=self.PRODUCT,
            raw=record,
            timestamp=timestamp,
            vendor_id=self._composite(record, _canonical(timestamp, start), target_ids),
            tenant_id=get("organization_id") or self.org_id,
            tenant_name=get("organization_name") or None,
            action=action,
            outcome=outcome(result, error),
            category=category(action, target_type),
            actor=Actor(actor_id, email or actor_id, email, get("actor_type") or None),
            source=Endpoint(ip, port),
            target=Target(target_type, target_ids[0] if target_ids else None, target_names[0] if target_names else None),
            region=locations[0] if locations else None,
            message=message,
            details=details,
        )


def _time(record: Any, key: str, default: dt.datetime) -> dt.datetime:
    """A record time, or ``default`` where it is absent or unparsable (normalize reports those)."""
    try:
        return parse_time(record[key])
    except (ValueError, KeyError, TypeError):
        return default


def _time_text(value: Any) -> Any:
    """A record time in one canonical spelling, or the value itself if unparsable."""
    try:
        return _canonical(parse_time(value), value)
    except ValueError:
        return value


def _canonical(value: dt.datetime, text: Any) -> str:
    """``isoformat(timespec="microseconds")`` of ``value``, parsed from ``text`` (the spelling ids
    were first hashed with). Crusoe writes ``2024-05-06T07:08:09.123Z``: that text gives it by
    padding, without formatting the time again."""
    if type(text) is str and len(text) == 24 and text[10] == "T" and text[19] == "." and text[23] == "Z":
        return text[:23] + "000+00:00"
    return iso(value, "microseconds")[:-1] + "+00:00"


def as_list(value: Any, field: str) -> list[str]:
    """A list field as a list of strings: JSON arrays, ``"[a,b]"`` strings, a bare string, or empty."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, (dict, list)) or item is None:
                raise RecordError(f"{field} holds a {type(item).__name__}, not a string")
            out.append(str(item))
        return out
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1].strip()
        if "," not in text:  # the common case: one item
            return [text] if text else []
        return [part.strip() for part in text.split(",") if part.strip()]
    raise RecordError(f"{field} is a {type(value).__name__}, not a list")


def outcome(result: str, error_message: str) -> str:
    """success / failure / unknown from Crusoe's HTTP-style ``result`` text."""
    text = result.strip().lower()
    if text.isdigit():
        code = int(text)
        return "success" if 200 <= code < 300 else "failure" if code >= 400 else "unknown"
    if text in _SUCCESS:
        return "failure" if error_message else "success"
    if text in _FAILURE or error_message:
        return "failure"
    return "unknown"


@functools.lru_cache(maxsize=1024)
def category(action: str, target_type: str | None) -> str:
    """The event category from the action and the target type."""
    if re.sub(r"[^a-z]", "", action.lower()) in _AUTH_ACTIONS:
        return "authentication"
    kind = re.sub(r"[^a-z]", "", (target_type or "").lower())
    if kind in _IAM_TARGETS:
        return "iam"
    if kind in _NETWORK_TARGETS:
        return "network"
    return "configuration"


def _auth_hint(status: int | None, detail: str) -> str:
    """One line naming the likely causes of a refused request (``detail`` is the error body excerpt)."""
    try:
        reason = str(jsoncodec.loads(detail).get("message") or detail)
    except (ValueError, AttributeError):
        reason = detail
    if status == 401:
        return (
            f"{reason or 'bad_credential'}: the request signature was refused; check access_key_id and "
            "secret_key (wrong, revoked or from another account), this host's clock (more than a few minutes "
            "off? sync NTP), and any proxy that rewrites or reorders the query string"
        )
    return (
        f"{reason or 'unauthorized'}: the key is valid but may not read audit logs; the key's user needs the "
        "admin role in this organization, and organization_id must be the organization the key belongs to"
    )
