"""Carbon Black Cloud audit logs (Audit Log API v1).

Auth: ``X-Auth-Token: <API Secret Key>/<API ID>`` on every request (a Custom key
with ``org.audits`` READ; export jobs also need ``jobs.status`` READ). Routes live
under ``<base_url>/audit_log/v1/orgs/<org_key>/logs`` and ``<base_url>/jobs/v1/orgs/<org_key>/jobs``.

Three modes (``mode`` option):

- ``search`` (default): ``POST …/_search`` over closed windows ``[cursor, now - lag)``
  with ``criteria.create_time`` start/end, ``sort`` create_time ascending,
  ``rows``/``start`` paging (``page_size`` rows) until ``start >= num_found``, plus the configured
  ``criteria``, ``exclusions`` and ``query``. Whether the vendor's end bound is
  inclusive is undocumented, so a record at ``end`` is left to the next window. A
  record created outside the window (the vendor broke its contract) is delivered
  anyway, with a warning, and moves no cursor: it is never dropped. The cursor is stored
  after every page as ``{"until": <last create_time>, "seen": [ids at that time]}``
  (the window end once the window is done), so a restart resumes inside a window
  and drops exactly the records already delivered at the boundary. Ids of the
  previous page are also dropped, which absorbs the duplicate an offset shift
  produces when a late record lands in a window being paged. The last page of a
  window closes it in the coverage ledger, with ``num_found`` (of the last
  answer) less the records returned at its inclusive end as the vendor's count; a
  mid-window cursor carries the window's start (``from``) so a restart still
  records the whole window.
- ``queue`` (explicit): ``GET …/_queue`` until it answers no records. **The read is
  destructive**: the vendor clears what it returned. Each response body is
  written and fsynced to ``<state dir>/sources/<name>/spool`` (``forwarder.spool``)
  before it is parsed; the file is deleted once the page's checkpoint is stored,
  and leftovers are replayed first on the next pass. A request in flight is the
  one moment the records exist nowhere but on the wire, so before each request
  the scratch key ``queue_in_flight`` is stored (with the newest ``create_time``
  the queue has handed out) and it is deleted once the body is spooled. A pass
  that finds it (the process died, or an answer broke off: that is not retried,
  as a retry would read the next batch and hide the loss) first searches
  ``[that time − recovery_margin, now)``, delivers what it finds (same ids) and
  logs one line with the count; the claim moves to ``queue_recovering`` with the
  range and the search's progress, so an interrupted recovery resumes. Every API
  key has its own queue: **two readers with different keys each receive every
  record (duplicates)**, two readers sharing a key split the stream between them,
  and a new key starts three days back (a key rotation replays up to three days; the
  deterministic ids below make those duplicates harmless where the target
  deduplicates). The queue cannot read a past range (no backfill/export) and
  cannot filter.
- ``export``: for large backfills. ``POST …/_export`` (the search body plus
  ``"format": "json"``), poll ``GET /jobs/…/{id}`` until ``COMPLETED``, stream the
  download to disk, then stream-parse it (a JSON array or JSON lines; an object
  with a ``results`` array like a search answer is read whole; the layout is not
  documented). The job id is kept in the checkpoint store's scratch
  table, so a restart resumes the same job; the cursor counts records delivered
  from it, so a crash mid-file does not redeliver the delivered part.

``check`` always uses a one-row search over the last hour, never the queue:
reading the queue to test a connection would throw a batch of records away.

Rate limiting: the vendor limits per source IP with a sliding window. Every
request to one host goes through one shared limiter (``rate_limit`` per
minute); a 429 blocks that limiter, i.e. every request of every source to that
host in this process, until ``Retry-After`` has passed, so nothing is sent
inside the window (requests inside it would extend the vendor's block). 5xx and
connection errors are retried with jittered exponential backoff
(``[source.http]`` retries/backoff_*).

Event id: v1 records carry no id. The id is a SHA-256 of ``org_key | create_time
(normalized to milliseconds) | actor | actor_ip | description | request_url``;
the same record read by queue, search, export or another key gets the same id.
Two identical actions by one actor from one IP in the same millisecond collapse.

Normalization:

| Record field        | AuditEvent                                                          |
|---------------------|---------------------------------------------------------------------|
| ``create_time``     | ``timestamp`` (required; a record without it is dead-lettered)      |
| ``org_key``         | ``tenant_id`` (the configured org key if the record lacks it)       |
| ``actor``           | ``actor.id`` and ``actor.name``; ``actor.email`` when it contains ``@``; ``actor.type`` ``user`` (email) or ``api_key`` (an API key/connector id) |
| ``actor_ip``        | ``source.ip``                                                       |
| ``description``     | ``message``; ``action``, ``category`` and ``target`` from its wording (below) |
| ``flagged``         | ``outcome``: ``failure`` when true, ``success`` when false; only when the record omits it (queue, Data Forwarder) does failure wording outside quoted names decide; also ``details.flagged`` |
| ``verbose``         | ``details.verbose`` (absent means false)                            |
| ``request_url``     | ``url``                                                             |
| other fields        | ``details`` (kept as they are)                                      |

Action, category and target come from the description
(``forwarder.sources.carbon_black_cloud_description``): the earliest verb outside
quoted names gives ``login``/``logout`` (authentication), ``live_response``
(session), ``create``, ``update``, ``delete``, ``download`` or ``retrieve``; the
object named after it gives ``target.type`` (user, api_key, role, policy,
report...) with its quoted name or e-mail as ``target.name`` and an API ID as
``target.id``. Users, API keys/IDs/secrets, access levels, roles, connectors,
passwords and permissions are ``iam``, other objects ``configuration``.

Not done: the deprecated v3 ``/integrationServices/v3/auditlogs`` endpoint, CSV
exports, VMware CSP bearer-token identities, and a coverage ledger for the queue
(it has no time windows; run a ``search`` source if an auditor needs one).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlsplit

import requests

from forwarder import jsoncodec
from forwarder.auth.api_key import ApiKeyAuth
from forwarder.config import SourceConfig
from forwarder.errors import ConfigError, HttpError, RecordError, SourceError
from forwarder.event import Actor, AuditEvent, Endpoint, Target, content_hash
from forwarder.http import HttpClient, id_segment, response_json, shared_limiter
from forwarder.options import Option
from forwarder.secrets import Secret
from forwarder.sources.base import Page, Source, per_record, resume_point, time_windows
from forwarder.sources.carbon_black_cloud_description import describe
from forwarder.spool import Spool
from forwarder.state import CheckpointStore
from forwarder.timeutil import format_time, now, parse_time

log = logging.getLogger("forwarder.sources.carbon_black_cloud")

VENDOR = "carbon_black_cloud"
WHAT = "carbon black cloud"
#: Fields accepted in ``criteria`` and ``exclusions`` (create_time is set from the windows).
FILTER_FIELDS: dict[str, type] = {
    "actor_ip": list,
    "actor": list,
    "request_url": list,
    "description": list,
    "flagged": bool,
    "verbose": bool,
}
_KNOWN_FIELDS = ("org_key", "actor_ip", "actor", "request_url", "description", "flagged", "verbose", "create_time")
_SORT = [{"field": "create_time", "order": "ASC"}]
_JOB_ID = re.compile(r"[0-9]{1,20}")  # documented as an integer, e.g. 4805565
#: Scratch keys: a queue read in flight (its batch may be lost if the process dies), and a recovery under way.
IN_FLIGHT, RECOVERING = "queue_in_flight", "queue_recovering"
#: How far back a new API key's queue starts (the vendor's documented three days).
QUEUE_REACH = dt.timedelta(days=3)
_CHUNK = 1 << 16

def _check_org(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value) else "must be the org key shown in the console (letters and digits)"


def _check_filters(value: dict[str, Any]) -> str | None:
    for key, item in value.items():
        if key == "create_time":
            return "must not contain create_time: the forwarder sets it from its time windows"
        kind = FILTER_FIELDS.get(key)
        if kind is None:
            return f"unknown field {key!r} (known: {', '.join(FILTER_FIELDS)})"
        if kind is bool and not isinstance(item, bool):
            return f"{key} must be true or false"
        if kind is list and not (isinstance(item, list) and item and all(isinstance(v, str) and v for v in item)):
            return f"{key} must be a non-empty list of strings"
    return None


class CarbonBlackCloudSource(Source):
    """Carbon Black Cloud audit logs by search, queue or export job."""

    TYPE = "carbon_black_cloud"
    VENDOR = VENDOR
    PRODUCT = "audit"
    OPTIONS = {
        "base_url": Option("secure_url", help="console URL of the org's environment, e.g. https://defense.conferdeploy.net"),
        "org_key": Option("str", help="organization key, e.g. ABCD1234", check=_check_org),
        "api_id": Option("str", help="API ID of a Custom API key with org.audits READ"),
        "api_secret": Option("secret", help="API Secret Key of that key (env:NAME or file:PATH)"),
        "mode": Option("str", "search", "search (windows), queue (destructive, per key) or export (jobs, for backfills)", choices=("search", "queue", "export")),
        "criteria": Option("dict", {}, "search/export criteria, e.g. {actor = [\"alice@example.com\"], flagged = true}", check=_check_filters),
        "exclusions": Option("dict", {}, "search/export exclusions (same fields as criteria)", check=_check_filters),
        "query": Option("str", None, "search/export query string, e.g. description:login"),
        "page_size": Option("int", 1000, "search rows per request (and records per page of an export)", minimum=1, maximum=10000),
        "window": Option("duration", 3600.0, "search: longest time window paged through at once", minimum=1),
        "poll_interval": Option("duration", 5.0, "export: wait between job status polls", minimum=0.001),
        "max_wait": Option("duration", 3600.0, "export: stop waiting for a job after this long (the next pass resumes it)", minimum=1),
        "recovery_margin": Option("duration", 3600.0, "queue: after a crash during a queue read, search back this far before the newest record read", minimum=0),
        "rate_limit": Option("float", 200.0, "requests per minute to this host, shared by every source using it (vendor example: 1000 per 5 minutes)", minimum=1),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any], where: str) -> None:
        """The queue cannot filter: refuse filters there rather than silently ignore them."""
        if options["mode"] == "queue":
            for key in ("criteria", "exclusions", "query"):
                if options[key]:
                    raise ConfigError(f"{where}.{key}", "only applies to mode search or export; the queue cannot filter")

    def __init__(self, config: SourceConfig, store: CheckpointStore, work_dir: Path) -> None:
        super().__init__(config, store, work_dir)
        o = self.options
        self.org: str = o["org_key"]
        self.mode: str = o["mode"]
        self.SUPPORTS_RANGE = self.LEDGER = self.mode != "queue"  # type: ignore[misc]  # per instance: the queue has no past
        base = o["base_url"].rstrip("/")
        self.logs_url = f"{base}/audit_log/v1/orgs/{quote(self.org)}/logs"
        self.jobs_url = f"{base}/jobs/v1/orgs/{quote(self.org)}/jobs"
        token = Secret(f"{o['api_secret'].reveal()}/{o['api_id']}")
        self.http = HttpClient(
            WHAT,
            config.http,
            auth=ApiKeyAuth("X-Auth-Token", token),
            limiter=shared_limiter(f"host:{urlsplit(base).netloc.lower()}", o["rate_limit"]),
        )

    # -- modes ---------------------------------------------------------------
    def fetch(self, cursor: dict[str, Any] | None, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        """Pages of the configured mode."""
        if self.mode == "queue":
            return self._fetch_queue(cursor)
        if self.mode == "export":
            return self._fetch_export(cursor, start, end)
        return self._fetch_search(cursor, start, end)

    def _fetch_queue(self, cursor: dict[str, Any] | None) -> Iterator[Page]:
        """Replay spooled bodies, recover a batch a crash may have lost, then read the queue until it
        is empty: the in-flight marker is stored before each request and cleared once the body is spooled."""
        spool = Spool(self.work_dir / "spool")
        newest: str | None = (cursor or {}).get("newest")
        for path in spool.pending():
            log.info("%s: replaying spooled queue body %s", self.name, path.name)
            page = self._queue_page(spool.read(path), spool, path, newest)
            newest = page.cursor["newest"] if page.cursor else newest
            yield page
        yield from self._recover_queue()
        while True:
            spool.check_writable()
            self.store.scratch_put(self.name, IN_FLIGHT, {"at": format_time(now(), 6), "newest": newest})
            body = self._read_queue()
            try:
                path = spool.write(body)
            except SourceError as exc:
                # The vendor has already cleared these records: memory holds the only copy
                # (the marker stays, so the next start searches for them too).
                log.error("%s; delivering the batch just read from memory and stopping the queue", exc)
                yield self._queue_page(body, None, None, newest)
                raise exc
            self.store.scratch_delete(self.name, IN_FLIGHT)
            page = self._queue_page(body, spool, path, newest)
            newest = page.cursor["newest"] if page.cursor else newest
            yield page
            if not page.records:
                return

    def _recover_queue(self) -> Iterator[Page]:
        """If a queue read was in flight when the last run stopped, its batch may be lost: search
        ``[newest create_time the queue had handed out − recovery_margin, now)`` and deliver what is
        there (same ids, so what was delivered before deduplicates) before the queue resumes.

        The claim moves from ``IN_FLIGHT`` to ``RECOVERING`` (with the fixed range and the
        search's progress, advanced as pages commit) and goes once the last page is committed:
        a crash during recovery resumes it, and never drops it."""
        scratch = self.store.scratch_get(self.name)
        flight, state = scratch.get(IN_FLIGHT), scratch.get(RECOVERING)
        if not isinstance(flight, dict) and not isinstance(state, dict):
            return
        if isinstance(flight, dict) or not isinstance(state.get("until"), str):
            claims = [m for m in (flight, state) if isinstance(m, dict)]
            state = {"since": format_time(min(map(self._recovery_start, claims)), 6), "until": format_time(now(), 6), "search": None}
            self.store.scratch_put(self.name, RECOVERING, state)
            self.store.scratch_delete(self.name, IN_FLIGHT)
        since, until = parse_time(state["since"]), parse_time(state["until"])
        found = 0
        for page in self._fetch_search(state.get("search"), since, until):
            found += len(page.records)
            progress = {**state, "search": page.cursor}
            yield Page(page.records, None, page.position, [lambda p=progress: self.store.scratch_put(self.name, RECOVERING, p)])
        log.warning(
            "%s: a queue read was in flight when the forwarder last stopped; a possibly lost queue batch was "
            "recovered through search over %s .. %s: %d records (already delivered ones keep their ids)",
            self.name, format_time(since, 0), format_time(until, 0), found,
        )
        yield Page([], None, until, [lambda: self.store.scratch_delete(self.name, RECOVERING)])

    def _recovery_start(self, claim: dict[str, Any]) -> dt.datetime:
        """Where the search for a claim's possibly lost batch starts."""
        try:
            if "search" in claim:
                return parse_time(claim["since"])  # an earlier recovery's start
            newest = parse_time(claim["newest"]) if claim.get("newest") else now() - QUEUE_REACH
        except ValueError:
            newest = now() - QUEUE_REACH
        return newest - dt.timedelta(seconds=self.options["recovery_margin"])

    def _read_queue(self) -> bytes:
        """One destructive read. The body is read outside the HTTP retries: a body that breaks
        off must stop the pass loudly, not be retried into the next batch in silence."""
        resp = self.http.request("GET", f"{self.logs_url}/_queue", stream=True, idempotent=False)
        try:
            return resp.content
        except requests.exceptions.RequestException as exc:
            raise SourceError(
                f"{WHAT}: a queue answer broke off ({type(exc).__name__}) after the vendor had cleared its records; "
                "they never reached the spool; the next start searches for them (same event ids)"
            ) from None
        finally:
            resp.close()

    def _queue_page(self, body: bytes, spool: Spool | None, path: Path | None, newest: str | None) -> Page:
        try:
            records = _results(jsoncodec.loads(body), "GET _queue")
        except (ValueError, SourceError) as exc:
            kept = f"; the body is kept as {Spool.set_aside(path)}" if path is not None else ""
            raise SourceError(f"{WHAT}: queue answer cannot be parsed ({str(exc)[:120]}){kept}") from None
        rejected: list[tuple[str, Any]] = []
        keyed = sorted(per_record(records, _sort_key, rejected, f"{WHAT}: cannot sort the record"), key=lambda pair: pair[1])
        records = [record for record, _ in keyed]
        hooks = [lambda: Spool.remove(path)] if path is not None else []
        position = _time_of(records[-1]) if records else None
        cursor = {"mode": "queue", "read_at": format_time(now()), "newest": _newest(records, newest)}
        return Page(records, cursor, position, hooks, rejected)

    def _fetch_search(self, cursor: dict[str, Any] | None, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        a = resume_point(cursor, start)
        seen = set((cursor or {}).get("seen") or ())
        opened = parse_time(cursor["from"]) if cursor and cursor.get("from") else None
        for wa, wb in time_windows(a, end, self.options["window"]):
            yield from self._search_window(wa, wb, seen, opened)
            seen, opened = set(), None

    def _search_window(self, wa: dt.datetime, wb: dt.datetime, seen: set[str], opened: dt.datetime | None = None) -> Iterator[Page]:
        """Page through ``[wa, wb)``; ``seen`` are ids at ``wa`` delivered before a restart, ``opened``
        where the window resumed that way began (its ledger entry starts there).

        The last page closes the window in the coverage ledger with the vendor's count:
        the last answer's ``num_found`` less the records it returned at ``wb`` (its end bound
        is inclusive; they belong to the next window); none for a window resumed in the middle.
        A record created outside ``[wa, wb]`` is delivered with a warning, never dropped."""
        body = self._search_body(wa, wb)
        rows = self.options["page_size"]
        offset = outside = at_end = 0
        last_time, last_ids = wa, set(seen)
        previous: set[str] = set()
        origin = format_time(opened or wa, 6)
        while True:
            doc = self._search({**body, "start": offset, "rows": rows})
            results = _results(doc, "POST _search")
            offset += len(results)
            found = _int(doc, "num_found")
            done = not results or offset >= found
            fresh, keys, rejected = [], set(), []
            for record, (t, key) in per_record(results, self._placed, rejected, f"{WHAT}: cannot place the record in its window"):
                if t is None:
                    fresh.append(record)  # normalize dead-letters it with the reason
                    continue
                if t == wb:
                    at_end += 1
                    continue  # the next window's first record (the vendor's end bound may be inclusive)
                if key in seen or key in previous or key in keys:
                    continue
                keys.add(key)
                fresh.append(record)
                if not wa <= t < wb:
                    outside += 1  # delivered, not dropped; it moves no cursor
                elif t > last_time:
                    last_time, last_ids = t, {key}
                elif t == last_time:
                    last_ids.add(key)
            previous = keys
            if outside:
                log.warning("%s: the search for %s .. %s returned %d records created outside it; delivered them", self.name, format_time(wa), format_time(wb), outside)
                outside = 0
            if done:
                count = None if opened not in (None, wa) else found - at_end
                yield Page(fresh, {"until": format_time(wb, 6)}, wb, covers=(opened or wa, wb), vendor_count=count, rejected=rejected)
                return
            yield Page(fresh, {"until": format_time(last_time, 6), "seen": sorted(last_ids), "from": origin}, last_time, rejected=rejected)

    def _placed(self, record: Any) -> tuple[dt.datetime | None, str | None]:
        """(create_time, id) of a search or export record; (None, None) when it has no usable time."""
        t = _time_of(record)
        return (None, None) if t is None else (t, record_key(record, self.org, t))

    def _fetch_export(self, cursor: dict[str, Any] | None, start: dt.datetime, end: dt.datetime) -> Iterator[Page]:
        a = resume_point(cursor, start)
        while a < end:
            job_id, job_end = self._export_job(a, end)
            done = 0
            if cursor and cursor.get("job") == job_id and cursor.get("until") == format_time(a, 6):
                done = int(cursor.get("done") or 0)
            yield from self._export_pages(job_id, a, job_end, done)
            a, cursor = job_end, None

    def _export_job(self, a: dt.datetime, end: dt.datetime) -> tuple[int, dt.datetime]:
        """The finished export job covering ``[a, …)``: the one in flight from an earlier pass, or a new one."""
        key = f"export:{format_time(a, 6)}"
        job = self.store.scratch_get(self.name).get(key)
        if job and parse_time(job["end"]) <= end:
            if self._export_path(job["id"]).exists():
                return job["id"], parse_time(job["end"])
            try:
                self._wait_for_job(job["id"])
                return job["id"], parse_time(job["end"])
            except HttpError as exc:
                if exc.status != 404:
                    raise
                log.warning("%s: export job %s is gone; starting a new one", self.name, job["id"])
        body = {**self._search_body(a, end), "format": "json"}
        doc = response_json(self._post(f"{self.logs_url}/_export", body), WHAT)
        job_id = doc.get("job_id") if isinstance(doc, dict) else None
        if not isinstance(job_id, (int, str)) or isinstance(job_id, bool):
            raise SourceError(f"{WHAT}: POST _export answered without a job_id")
        _job_segment(job_id)  # before it is stored: an id is data, never a path
        self.store.scratch_put(self.name, key, {"id": job_id, "end": format_time(end, 6)})
        log.info("%s: export job %s started for %s .. %s", self.name, job_id, format_time(a), format_time(end))
        self._wait_for_job(job_id)
        return job_id, end

    def _wait_for_job(self, job_id: int | str) -> None:
        deadline = time.monotonic() + self.options["max_wait"]
        while True:
            job = self.http.get_json(f"{self.jobs_url}/{_job_segment(job_id)}")
            status = job.get("status") if isinstance(job, dict) else None
            if status == "COMPLETED":
                return
            if status == "FAILED":
                self._forget_job(job_id)
                raise SourceError(f"{WHAT}: export job {job_id} FAILED; the next pass starts a new one")
            if time.monotonic() >= deadline:
                raise SourceError(f"{WHAT}: export job {job_id} is still {status} after {self.options['max_wait']:g}s; the next pass keeps waiting")
            self.pause(self.options["poll_interval"])

    def _export_pages(self, job_id: int | str, a: dt.datetime, b: dt.datetime, done: int) -> Iterator[Page]:
        """Pages of the job's records in ``[a, b)``, skipping the ``done`` already delivered."""
        path = self._download(job_id)
        rows = self.options["page_size"]
        until = format_time(a, 6)
        batch: list[Any] = []
        position = a
        count = 0
        for record in iter_json_records(path):
            count += 1
            if count <= done:
                continue
            t = _time_of(record)  # never raises: None when the record has no usable time
            if t == b:
                continue  # an inclusive end bound: the next window's record
            if t is not None and a <= t < b:
                position = max(position, t)
            batch.append(record)  # also one created outside [a, b): delivered, never dropped
            if len(batch) >= rows:
                yield Page(batch, {"until": until, "job": job_id, "done": count}, position)
                batch = []

        def finished() -> None:
            self._forget_job(job_id)
            path.unlink(missing_ok=True)

        yield Page(batch, {"until": format_time(b, 6)}, b, [finished], covers=(a, b))

    def _download(self, job_id: int | str) -> Path:
        """The job's output on local disk (downloaded once, streamed, fsynced)."""
        path = self._export_path(job_id)
        if path.exists():
            return path
        part = path.with_name(path.name + ".part")
        resp = self.http.request("GET", f"{self.jobs_url}/{_job_segment(job_id)}/download", stream=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(part, "wb") as fh:
                for chunk in resp.iter_content(_CHUNK):
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(part, path)
        except requests.exceptions.RequestException:
            part.unlink(missing_ok=True)
            raise SourceError(f"{WHAT}: download of export job {job_id} broke off; the next pass downloads it again") from None
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise SourceError(f"{WHAT}: cannot store export job {job_id} in {path.parent}: {exc.strerror}") from None
        finally:
            resp.close()
        return path

    def _export_path(self, job_id: int | str) -> Path:
        """A name derived from a hash of the id, never from the id itself."""
        return self.work_dir / f"export-{content_hash(WHAT, str(job_id))[:24]}.json"

    def _forget_job(self, job_id: int | str) -> None:
        for key, job in self.store.scratch_get(self.name).items():
            if key.startswith("export:") and job.get("id") == job_id:
                self.store.scratch_delete(self.name, key)

    # -- requests ------------------------------------------------------------
    def _search_body(self, a: dt.datetime, b: dt.datetime) -> dict[str, Any]:
        o = self.options
        criteria = {**o["criteria"], "create_time": {"start": format_time(a, 6), "end": format_time(b, 6)}}
        body: dict[str, Any] = {"criteria": criteria, "sort": _SORT}
        if o["exclusions"]:
            body["exclusions"] = o["exclusions"]
        if o["query"]:
            body["query"] = o["query"]
        return body

    def _post(self, url: str, body: dict[str, Any]) -> requests.Response:
        return self.http.request("POST", url, data=jsoncodec.dumps(body), headers={"Content-Type": "application/json"})

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = response_json(self._post(f"{self.logs_url}/_search", body), WHAT)
        if not isinstance(doc, dict):
            raise SourceError(f"{WHAT}: POST _search answered {type(doc).__name__}, not an object")
        return doc

    def check(self) -> str:
        """A one-row search over the last hour: proves key, permission and org without touching the queue."""
        doc = self._search({"rows": 1, "criteria": {"create_time": {"range": "-1h"}}})
        _results(doc, "POST _search")
        found = _int(doc, "num_found")
        extra = "; export jobs also need jobs.status READ, which only a real job can prove" if self.mode == "export" else ""
        return f"org {self.org}: audit log search works ({found} records in the last hour; the queue was not read){extra}"

    def close(self) -> None:
        """Release the HTTP session."""
        self.http.close()

    # -- records -------------------------------------------------------------
    def normalize(self, record: dict[str, Any]) -> AuditEvent:
        """Map one audit record (table in the module docstring)."""
        if not isinstance(record, dict):
            raise RecordError(f"record is {type(record).__name__}, not an object")
        if record.get("create_time") in (None, ""):
            raise RecordError("record has no create_time")
        for name in ("actor", "actor_ip", "description", "request_url", "org_key"):
            if record.get(name) is not None and not isinstance(record[name], str):
                raise RecordError(f"{name} is {type(record[name]).__name__}, not a string")
        for name in ("flagged", "verbose"):
            if record.get(name) is not None and not isinstance(record[name], bool):
                raise RecordError(f"{name} is {type(record[name]).__name__}, not true/false")
        try:
            when = parse_time(record["create_time"])
        except ValueError as exc:
            raise RecordError(f"create_time: {exc}") from None
        actor = record.get("actor") or None
        description = record.get("description") or ""
        flagged = record.get("flagged")
        meaning = describe(description)
        details = {k: v for k, v in record.items() if k not in _KNOWN_FIELDS}
        details["flagged"] = bool(flagged)
        details["verbose"] = bool(record.get("verbose"))
        return AuditEvent.build(
            vendor=VENDOR,
            product=self.PRODUCT,
            raw=record,
            timestamp=when,
            vendor_id=record_key(record, self.org, when),
            tenant_id=record.get("org_key") or self.org,
            action=meaning.action,
            # flagged decides; the wording is a fallback only where the record omits it (queue, Data Forwarder)
            outcome="failure" if (flagged if flagged is not None else meaning.says_failed) else "success",
            category=meaning.category,
            actor=Actor(
                id=actor,
                name=actor,
                email=actor if actor and "@" in actor else None,
                type=("user" if "@" in actor else "api_key") if actor else None,
            ),
            source=Endpoint(ip=record.get("actor_ip") or None),
            target=Target(type=meaning.target_type, id=meaning.target_id, name=meaning.target_name),
            url=record.get("request_url") or None,
            message=description or None,
            details=details,
        )


def record_key(record: dict[str, Any], org_key: str, when: dt.datetime | None = None) -> str:
    """The composite deterministic id; ``when`` is the already parsed create_time (ValueError if it is not a time).

    An empty field counts as an absent one: the vendor's Data Forwarder omits empty fields.
    """
    return content_hash(
        VENDOR,
        record.get("org_key") or org_key,
        format_time(when or parse_time(record.get("create_time")), 3),
        record.get("actor") or None,
        record.get("actor_ip") or None,
        record.get("description") or None,
        record.get("request_url") or None,
    )


def _job_segment(job_id: Any) -> str:
    """The export job id as a URL path segment, refused unless it is the documented integer."""
    return id_segment(job_id, f"{WHAT}: export job id", _JOB_ID, "an integer as the vendor documents")


def _time_of(record: Any) -> dt.datetime | None:
    """The record's create_time, or None if it has none that parses (whatever the record is)."""
    try:
        return parse_time(record["create_time"])
    except (TypeError, KeyError, ValueError):
        return None


def _newest(records: list[Any], newest: str | None) -> str | None:
    """The latest create_time among ``records`` and ``newest`` (RFC 3339 text)."""
    times = [t for t in map(_time_of, records) if t is not None]
    if newest:
        try:
            times.append(parse_time(newest))
        except ValueError:
            pass
    return format_time(max(times), 6) if times else newest


def _sort_key(record: Any) -> tuple[int, dt.datetime]:
    t = _time_of(record)
    return (0, t) if t is not None else (1, dt.datetime.min.replace(tzinfo=dt.timezone.utc))


def _results(doc: Any, what: str) -> list[Any]:
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list):
        raise SourceError(f"{WHAT}: {what} answered without a results list")
    return results


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SourceError(f"{WHAT}: answer has no integer {key}")
    return value


def iter_json_records(path: Path) -> Iterator[Any]:
    """Stream the values of an export file: a JSON array, JSON lines, or a search-style object
    whose ``results`` are the records (read whole); ``SourceError`` if none of those."""
    try:
        with open(path, encoding="utf-8") as fh:
            yield from jsoncodec.iter_values(fh, envelope="results")
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise SourceError(f"{WHAT}: export file {path.name} is neither a JSON array nor JSON lines: {str(exc)[:120]}") from None
    except OSError as exc:
        raise SourceError(f"{WHAT}: cannot read export file {path}: {exc.strerror}") from None
