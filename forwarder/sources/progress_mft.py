"""Progress Automate MFT audit logs, read through the asynchronous audit-log report API.

Automate MFT has no endpoint that lists audit events. Per time window this source
creates a report, polls it until it is completed, downloads the file, parses it as
a stream, delivers the rows and deletes the report once the window's checkpoint
is stored.

What is confirmed and what is inferred
--------------------------------------
Confirmed by Progress's documentation: the PKJWT flow (ES256 assertion with
``kid``; ``iss`` = ``sub`` = tenant id, ``aud`` = token URL, ``jti``, ``nbf``,
``iat``, ``exp`` at most 10 minutes ahead), ``POST /v1/oauth/token``, bearer
tokens, the ``us``/``eu`` hosts.

Known only from Progress's audit-log sample script (no API reference exists):
``POST/GET/DELETE /v1/reports/audit-logs[/{id}]``, the create body (``type``
0 = JSON / 1 = CSV, ``start``, ``end``, ``actor``, ``actorType``, ``actions``,
``resources``, ``outcomes``, ``sourceIp``, always all nine keys) and its enums,
``id``/``status``/``url`` in responses, status ``0``/``InProgress`` and
``1``/``Completed`` (number or case-insensitive string, anything else is fatal),
the download ``url`` fetched without auth first and with the bearer token on
401/403, the list endpoint's ``items``, and a JSON (not form) token request.

Inferred (verify against a real tenant):

- The report row schema. Columns are assumed to carry the filter names
  (``actor``, ``actorType``, ``action``, ``resource``, ``outcome``, ``sourceIp``)
  plus a timestamp and maybe ``id``, ``resourceId``, ``resourceName``,
  ``message``. Keys are matched ignoring case, spaces, ``_`` and ``-``, so
  ``sourceIp``, ``Source IP`` and ``source_ip`` are the same column; a few
  aliases are accepted (see ``FIELDS``). Unmapped columns go to ``details``.
- The JSON report's layout: a top-level array (streamed), NDJSON (streamed) or an
  object with an ``items`` array (read whole). CSV: a header row, UTF-8 (a BOM is
  skipped).
- ``start``/``end`` inclusivity: windows are half-open ``[start, end)`` at second
  precision; a row seen twice at a boundary gets the same id.
- Token lifetime: ``expires_in`` when the server sends it, else 300 s.
- A bearer token is only ever sent to the API host: a download URL on another host
  gets no ``Authorization`` header. A download URL must be https (plain http only to
  a loopback host).
- Report ids: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or a digit
  (the sample's ids may be file names such as ``abc.json``). Anything else, ``..``
  included, is refused before it is stored or put in a URL.

Crash safety
------------
A report id is written to the source's scratch state right after it is created and
removed only after the report is deleted. At the start of a pass with ids on record,
the list endpoint shows which still exist: the one covering the next window (same
start, format and filters) is reused; all others are deleted by id (their windows
were either delivered already or will be read again). Ids the list does not show are
deleted too, since whether the list is paged is undocumented: a 404 just forgets them. Reports this source did not record are never touched (reports cannot be
labelled, so they may belong to someone else). A report created by a request whose
answer was lost (timeout, then retried) cannot be recorded and is left behind.
Two processes running the same source name at once can delete each other's
reports: that costs a retried window, never data.

Normalization
-------------
=====================  ==========================================================
AuditEvent field        Report column (matched loosely, see above)
=====================  ==========================================================
id                      ``id`` when present and non-empty, else SHA-256 of tenant,
                        timestamp and every non-empty column (keys normalized,
                        values as text, so CSV and JSON rows give the same id)
timestamp               ``timestamp`` / ``time`` / ``date`` / ``createdAt``
tenant_id               option ``tenant_id``
action                  ``<resource>.<action>``, e.g. ``Task.Create``; ``action``
                        alone when there is no resource
outcome                 ``Success`` → success, ``Error``/``Failure`` → failure,
                        else unknown
category                by resource: User, Role, Membership, IdentityProvider,
                        PublicKey → iam; Folder → file; others → configuration
actor.name              ``actor``
actor.email             ``actor`` when it contains ``@``
actor.id                ``actorId``
actor.type              ``actorType``: User → user, ApiKey → api_key, else lower case
source.ip               ``sourceIp`` when it is an IP address (else kept in details)
target.type             ``resource``
target.id / target.name ``resourceId`` / ``resourceName``
region                  option ``region``, or ``<r>`` of ``api.<r>.mft.progress.com``
message                 ``message`` / ``description``, else ``<action> <resource> <name>``
details                 every other non-empty column, under its original name
=====================  ==========================================================
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import ipaddress
import logging
import re
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urljoin, urlsplit

import requests

from forwarder import jsoncodec
from forwarder.auth.jwt_assertion import BODY_ENCODINGS, JwtAssertionAuth, load_es256_key
from forwarder.config import SourceConfig
from forwarder.errors import AuthError, ConfigError, ForwarderError, RecordError, SourceError, UnreadableRecord
from forwarder.event import Actor, AuditEvent, Endpoint, Target, content_hash
from forwarder.http import HttpClient, id_segment, origin, response_json, safe_url, shared_limiter
from forwarder.options import Option, cleartext
from forwarder.sources.base import Page, Source, resume_point
from forwarder.state import CheckpointStore
from forwarder.timeutil import format_time, parse_time

log = logging.getLogger("forwarder.sources.progress_mft")

REGIONS = {"us": "https://api.us.mft.progress.com", "eu": "https://api.eu.mft.progress.com"}
TOKEN_PATH = "/v1/oauth/token"
REPORTS_PATH = "/v1/reports/audit-logs"
REPORT_TYPES = {"json": 0, "csv": 1}
ACTOR_TYPES = ("All", "User", "ApiKey")
ACTIONS = ("Get", "Create", "Update", "Delete")
OUTCOMES = ("Success", "Error")
RESOURCES = (
    "Task", "Endpoint", "AuthenticationMethod", "Schedule", "Agent", "Folder", "KeyCert", "Script",
    "Parameter", "Tag", "User", "Role", "Report", "IdentityProvider", "PublicKey", "Membership",
    "TenantSetting", "AuditLog", "System",
)
MAX_ACTOR = 320
REPORT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SCRATCH_PREFIX = "report:"
CHUNK = 64 * 1024

#: Event field -> accepted column names, normalized (lower case, letters and digits only).
FIELDS: dict[str, tuple[str, ...]] = {
    "id": ("id", "eventid", "auditlogid"),
    "timestamp": ("timestamp", "time", "date", "datetime", "createdat", "occurredat"),
    "actor": ("actor", "actoremail", "user", "username"),
    "actor_id": ("actorid", "userid"),
    "actor_type": ("actortype",),
    "action": ("action",),
    "resource": ("resource", "resourcegroup", "resourcetype"),
    "resource_id": ("resourceid",),
    "resource_name": ("resourcename",),
    "outcome": ("outcome", "result"),
    "source_ip": ("sourceip", "ipaddress", "clientip"),
    "message": ("message", "description"),
}
_COLUMN_FIELD = {column: name for name, columns in FIELDS.items() for column in columns}
_NOT_KEY = re.compile(r"[^a-z0-9]")
IAM_RESOURCES = frozenset({"user", "role", "membership", "identityprovider", "publickey"})
OUTCOME_MAP = {"success": "success", "error": "failure", "failure": "failure"}
ACTOR_TYPE_MAP = {"user": "user", "apikey": "api_key"}


def _check_actor(value: str) -> str | None:
    return f"must be at most {MAX_ACTOR} characters" if len(value) > MAX_ACTOR else None


def _check_ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be one IPv4 or IPv6 address"
    return None


class ProgressMftSource(Source):
    """Audit logs of one Automate MFT tenant, one report per time window."""

    TYPE = "progress_mft"
    LEDGER = True
    VENDOR = "progress_mft"
    OPTIONS = {
        "region": Option("str", None, "us or eu (or set base_url)", choices=tuple(REGIONS)),
        "base_url": Option("secure_url", None, "API base URL instead of region"),
        "tenant_id": Option("str", help="tenant id (Plan and Usage page): the assertion's iss and sub"),
        "key_id": Option("str", help="the API key's Public Key ID: the assertion's kid"),
        "private_key": Option("secret", help="env:NAME or file:PATH of the EC P-256 private key (PEM)"),
        "private_key_passphrase": Option("secret", None, "passphrase of an encrypted PEM key"),
        "token_body": Option("str", "json", "token request encoding: json (vendor sample) or form (RFC 7523)", choices=BODY_ENCODINGS),
        "assertion_lifetime": Option("duration", 120.0, "exp of each client assertion", minimum=10, maximum=600),
        "report_format": Option("str", "json", "report file type", choices=tuple(REPORT_TYPES)),
        "window": Option("duration", 3600.0, "time span of one report (whole seconds)", minimum=1),
        "poll_interval": Option("duration", 5.0, "wait between report status checks", minimum=0.01, maximum=300),
        "max_wait": Option("duration", 900.0, "give up on a report not completed after this long", minimum=0.01),
        "page_size": Option("int", 1000, "rows handed to the pipeline at a time", minimum=1, maximum=100_000),
        "actor": Option("str", None, "only actors whose email contains this", check=_check_actor),
        "actor_type": Option("str", "All", "only this actor type", choices=ACTOR_TYPES),
        "actions": Option("list", [], "only these actions", choices=ACTIONS),
        "resources": Option("list", [], "only these resource groups", choices=RESOURCES),
        "outcomes": Option("list", [], "only these outcomes", choices=OUTCOMES),
        "source_ip": Option("str", None, "only requests from this IP address", check=_check_ip),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any], where: str) -> None:
        """Exactly one of region/base_url; a usable private key."""
        if (options["region"] is None) == (options["base_url"] is None):
            raise ConfigError(f"{where}.region", "set either region (us, eu) or base_url, not both or neither")
        load_es256_key(options["private_key"], options["private_key_passphrase"], f"{where}.private_key")

    def __init__(self, config: SourceConfig, store: CheckpointStore, work_dir: Path) -> None:
        super().__init__(config, store, work_dir)
        o = self.options
        self.base_url: str = (o["base_url"] or REGIONS[o["region"]]).rstrip("/")
        self.tenant_id: str = o["tenant_id"]
        self.region: str | None = o["region"] or _region_of(self.base_url)
        self.format: str = o["report_format"]
        self.window = dt.timedelta(seconds=int(o["window"]))  # whole seconds: report times have no fraction
        self.poll_interval: float = o["poll_interval"]
        self.max_wait: float = o["max_wait"]
        self.page_size: int = o["page_size"]
        self.filters = {
            "actor": o["actor"],
            "actorType": o["actor_type"],
            "actions": list(dict.fromkeys(o["actions"])),
            "resources": list(dict.fromkeys(o["resources"])),
            "outcomes": list(dict.fromkeys(o["outcomes"])),
            "sourceIp": o["source_ip"],
        }
        # Identifies what a report was asked for, so a recorded one is reused only if it matches.
        self.request_key = content_hash(self.format, self.filters)[:16]
        self.reports_url = self.base_url + REPORTS_PATH
        self.spool_dir = self.work_dir / "reports"
        limiter = shared_limiter(f"progress_mft:{self.base_url}:{self.tenant_id}")
        self.auth = JwtAssertionAuth(
            token_url=self.base_url + TOKEN_PATH,
            client_id=self.tenant_id,
            key_id=o["key_id"],
            private_key=load_es256_key(o["private_key"], o["private_key_passphrase"], f'source "{self.name}".private_key'),
            settings=config.http,
            limiter=limiter,
            body=o["token_body"],
            lifetime=o["assertion_lifetime"],
            what="progress mft token",
        )
        self.http = HttpClient("progress mft", config.http, auth=self.auth, limiter=limiter)

    # -- Source interface ---------------------------------------------------
    def check(self) -> str:
        """Get a token and list reports: proves key, tenant and report permission; creates nothing."""
        items = self._list()
        return f"token issued for tenant {self.tenant_id}; report API answers ({len(items)} reports on the tenant)"

    def close(self) -> None:
        self.http.close()
        self.auth.close()

    def fetch(self, cursor: dict[str, Any] | None, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        """One report per window of ``[cursor or start, end)``; each window's last page carries its cursor."""
        a = resume_point(cursor, start).replace(microsecond=0)
        end = end.replace(microsecond=0)
        reusable = self._recover(a, end)
        while a < end:
            record = reusable.pop(format_time(a, 0), None)
            if record is not None:
                b = parse_time(record["end"])
            else:
                later = [parse_time(s) for s in reusable]
                b = min([a + self.window, end, *later])
                record = self._create(a, b)
            yield from self._read(record, a, b)
            a = b

    def normalize(self, record: dict[str, Any]) -> AuditEvent:
        """Map one report row (see the table in the module docstring)."""
        if not isinstance(record, dict):
            raise RecordError(f"report row is a {type(record).__name__}, not an object")
        if None in record:
            raise RecordError("CSV row has more fields than the header")
        fields: dict[str, Any] = {}
        details: dict[str, Any] = {}
        for key, value in record.items():
            if value is None or value == "":
                continue
            name = _COLUMN_FIELD.get(_column_key(key))
            if name is not None and name not in fields:
                fields[name] = value
            else:
                details[key] = value
        stamp = fields.get("timestamp")
        if stamp is None:
            raise RecordError("report row has no timestamp column")
        try:
            timestamp = parse_time(stamp)
        except ValueError as exc:
            raise RecordError(f"report row has a bad timestamp: {exc}") from None
        text = {k: _text(v) for k, v in fields.items()}
        actor = text.get("actor")
        verb = text.get("action")
        resource = text.get("resource")
        ip = text.get("source_ip")
        if ip is not None and _check_ip(ip) is not None:
            details.setdefault("sourceIp", ip)
            ip = None
        row_id = text.get("id")
        vendor_id = row_id or content_hash(
            self.tenant_id,
            format_time(timestamp, 6),
            {_column_key(k): _text(v) for k, v in record.items() if v is not None and v != ""},
        )
        target_label = text.get("resource_name") or text.get("resource_id")
        message = text.get("message") or " ".join(p for p in (verb, resource, target_label) if p) or None
        actor_type = text.get("actor_type")
        return AuditEvent.build(
            vendor=self.VENDOR,
            product=self.PRODUCT,
            raw=record,
            timestamp=timestamp,
            vendor_id=vendor_id,
            tenant_id=self.tenant_id,
            action=f"{resource}.{verb}" if resource and verb else verb,
            outcome=OUTCOME_MAP.get((text.get("outcome") or "").lower(), "unknown"),
            category=_category(resource),
            actor=Actor(
                id=text.get("actor_id"),
                name=actor,
                email=actor if actor and "@" in actor else None,
                type=ACTOR_TYPE_MAP.get(actor_type.lower(), actor_type.lower()) if actor_type else None,
            ),
            source=Endpoint(ip=ip),
            target=Target(type=resource, id=text.get("resource_id"), name=text.get("resource_name")),
            region=self.region,
            message=message,
            details=details,
        )

    # -- one window -----------------------------------------------------------
    def _read(self, record: dict[str, Any], a: dt.datetime, b: dt.datetime) -> Iterator[Page]:
        """Wait for, download and parse one report; the last page commits ``b`` and deletes the report."""
        report = self._wait(record)
        path = self._download(record, report)
        batch: list[dict[str, Any]] = []
        try:
            for row in self._rows(record, path):
                batch.append(row)
                if len(batch) >= self.page_size:
                    yield Page(batch, None, a)
                    batch = []
        finally:
            path.unlink(missing_ok=True)
        yield Page(batch, {"until": format_time(b, 0)}, b, [lambda: self._discard(record)], covers=(a, b))

    def _create(self, a: dt.datetime, b: dt.datetime) -> dict[str, Any]:
        """Create the report of ``[a, b)`` and record its id before anything else can fail."""
        body = {"type": REPORT_TYPES[self.format], "start": format_time(a, 0), "end": format_time(b, 0), **self.filters}
        resp = self.http.request("POST", self.reports_url, ok=(200, 201, 202), json=body)
        data = response_json(resp, self.http.what)
        rid = data.get("id") if isinstance(data, dict) else None
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
            raise SourceError(f"progress mft: the create-report answer has no id: {_show(data)}")
        _quote(rid)  # before it is stored: an id is data, never a path
        record = {"id": str(rid), "start": body["start"], "end": body["end"], "request": self.request_key}
        self.store.scratch_put(self.name, SCRATCH_PREFIX + record["id"], record)
        log.debug("source %s: created report %s for %s - %s", self.name, record["id"], body["start"], body["end"])
        return record

    def _wait(self, record: dict[str, Any]) -> dict[str, Any]:
        """Poll until completed; on an unexpected status or after ``max_wait``, delete the report and fail."""
        deadline = time.monotonic() + self.max_wait
        while True:
            report = self._get(record)
            status = report.get("status")
            state = _status(status)
            if state == "completed":
                return report
            problem = None
            if state is None:
                problem = f"has unexpected status {_show(status)}"
            elif time.monotonic() >= deadline:
                problem = f"is still in progress after {self.max_wait:g} s (max_wait)"
            if problem:
                self._discard(record)
                raise SourceError(
                    f"progress mft: report {record['id']} ({record['start']} - {record['end']}) {problem}; "
                    "it was deleted and the window will be read again on the next pass"
                )
            self.pause(max(0.0, min(self.poll_interval, deadline - time.monotonic())))

    def _download(self, record: dict[str, Any], report: dict[str, Any]) -> Path:
        """Stream the file to the spool dir; an expired URL or a broken body gets one retry with a fresh URL."""
        path = self._spool_path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._save(self._url(record, report), path)
        except (AuthError, _BrokenDownload) as exc:
            log.info("source %s: report %s download failed (%s); trying once more with a fresh url", self.name, record["id"], exc)
            try:
                self._save(self._url(record, self._get(record)), path)
            except _BrokenDownload as again:
                raise SourceError(f"progress mft: download of report {record['id']} broke off twice: {again}") from None
            except AuthError as again:
                detail = f": {again.detail}" if again.detail else ""
                raise SourceError(
                    f"progress mft: download of report {record['id']} ({record['start']} - {record['end']}) was refused "
                    f"(HTTP {again.status}{detail}), also from a fresh url; "
                    "the report stays on record and the next pass tries again"
                ) from None
        return path

    def _spool_path(self, record: dict[str, Any]) -> Path:
        return self.spool_dir / f"{content_hash(record['id'])[:24]}.download"

    def _url(self, record: dict[str, Any], report: dict[str, Any]) -> str:
        url = report.get("url")
        if not isinstance(url, str) or not url:
            raise SourceError(f"progress mft: completed report {record['id']} has no download url")
        try:
            url = urljoin(self.base_url + "/", url)
            usable = urlsplit(url).scheme.lower() in ("http", "https") and not cleartext(url)
            shown = safe_url(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            usable, shown = False, "(unparsable)"
        if not usable:
            raise SourceError(
                f"progress mft: report {record['id']}: download url {shown} refused: "
                "only https (or http to a loopback host) is accepted"
            )
        return url

    def _save(self, url: str, path: Path) -> None:
        try:
            resp = self.http.request("GET", url, auth=False, stream=True)
        except AuthError:
            if origin(url) != origin(self.base_url):
                raise  # never hand the bearer token to another host
            resp = self.http.request("GET", url, stream=True)
        try:
            with path.open("wb") as fh:
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
        except requests.exceptions.RequestException as exc:
            raise _BrokenDownload(f"{safe_url(url)}: {type(exc).__name__}") from None
        except OSError as exc:
            raise SourceError(f"progress mft: cannot write {path}: {exc.strerror}") from None
        finally:
            resp.close()

    def _rows(self, record: dict[str, Any], path: Path) -> Iterator[Any]:
        """Rows of the downloaded file, read as a stream."""
        try:
            with path.open("r", encoding="utf-8-sig", newline="") as fh:
                yield from (_csv_rows(fh) if self.format == "csv" else jsoncodec.iter_values(fh, envelope="items"))
        except (ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
            raise SourceError(f"progress mft: report {record['id']} is not valid {self.format.upper()}: {exc}") from None

    # -- report housekeeping --------------------------------------------------
    def _get(self, record: dict[str, Any]) -> dict[str, Any]:
        report = self.http.get_json(f"{self.reports_url}/{_quote(record['id'])}")
        if not isinstance(report, dict):
            raise SourceError(f"progress mft: report {record['id']}: answer is not an object: {_show(report)}")
        return report

    def _list(self) -> list[Any]:
        data = self.http.get_json(self.reports_url)
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise SourceError(f"progress mft: the report list has no items array: {_show(data)}")
        return items

    def _recover(self, a: dt.datetime, end: dt.datetime) -> dict[str, dict[str, Any]]:
        """Settle reports on record from an earlier pass; return those to reuse, by window start.

        Reused: listed reports of disjoint windows inside ``[a, end)`` asked with
        today's format and filters. Deleted by id: all others (a 404 forgets the id).
        """
        records = [v for k, v in self.store.scratch_get(self.name).items() if k.startswith(SCRATCH_PREFIX)]
        if not records:
            return {}
        present = {str(item.get("id")) for item in self._list() if isinstance(item, dict)}
        reusable: dict[str, dict[str, Any]] = {}
        covered = a
        for record in sorted(records, key=lambda r: (r["start"], r["end"])):
            self._spool_path(record).unlink(missing_ok=True)  # a crash's leftover; a reused report is fetched again
            start, stop = parse_time(record["start"]), parse_time(record["end"])
            if record["id"] in present and start >= covered and stop <= end and record.get("request") == self.request_key:
                log.info("source %s: reusing report %s left by an earlier pass", self.name, record["id"])
                reusable[record["start"]] = record
                covered = stop
            else:
                self._discard(record)  # even when not listed: the list may be paged; a 404 just forgets it
        return reusable

    def _discard(self, record: dict[str, Any]) -> None:
        """Delete a report that will not be delivered; on failure keep it on record for the next pass."""
        try:
            self._delete(record)
        except ForwarderError as exc:
            log.warning("source %s: could not delete report %s (retried next pass): %s", self.name, record["id"], exc)

    def _delete(self, record: dict[str, Any]) -> None:
        self.http.request("DELETE", f"{self.reports_url}/{_quote(record['id'])}", ok=(200, 202, 204, 404))
        self.store.scratch_delete(self.name, SCRATCH_PREFIX + record["id"])


def _csv_rows(fh: Any) -> Iterator[Any]:
    """The rows of a CSV report; a row the csv module refuses is yielded as an ``UnreadableRecord``."""
    reader = csv.DictReader(fh)
    failed_at = -1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num == failed_at:
                raise  # no progress: the file itself is broken
            failed_at = reader.line_num
            yield UnreadableRecord(f"CSV line {reader.line_num}: {exc}", f"line {reader.line_num} of the report")
            continue
        yield row


class _BrokenDownload(Exception):
    """The report body ended early or the connection dropped while reading it."""


@functools.lru_cache(maxsize=4096)
def _column_key(name: Any) -> str:
    """A column name in lower case without separators: ``Source IP`` -> ``sourceip``."""
    return _NOT_KEY.sub("", str(name).lower())


def _status(value: Any) -> str | None:
    """``completed``, ``in_progress`` or None for a status given as a number or a string."""
    if isinstance(value, bool):
        return None
    if value == 1 or (isinstance(value, str) and value.lower() == "completed"):
        return "completed"
    if value == 0 or (isinstance(value, str) and value.lower() == "inprogress"):
        return "in_progress"
    return None


def _category(resource: str | None) -> str:
    key = (resource or "").lower()
    if key in IAM_RESOURCES:
        return "iam"
    return "file" if key == "folder" else "configuration"


def _region_of(base_url: str) -> str | None:
    m = re.match(r"^api\.([a-z0-9-]+)\.mft\.progress\.com$", urlsplit(base_url).hostname or "")
    return m.group(1) if m else None


def _quote(report_id: Any) -> str:
    """The report id as a URL path segment, refused unless it has the shape of an id."""
    return id_segment(report_id, "progress mft: report id", REPORT_ID, "a report id (letters, digits, '.', '_', '-')")


def _text(value: Any) -> str:
    """A column value as text, so CSV (all text) and JSON rows compare equal."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return jsoncodec.canonical(value).decode()


def _show(value: Any) -> str:
    """A short excerpt of an unexpected answer for an error line."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
