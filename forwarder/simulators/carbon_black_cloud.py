"""Carbon Black Cloud Audit Log API v1 simulator (queue, search, export jobs).

What it enforces:

- ``X-Auth-Token: <secret>/<api id>`` on every route (401 if missing, malformed,
  unknown or wrong); the org key in the path must be the key's org (403); the key
  needs ``org.audits`` READ for ``/logs`` routes and ``jobs.status`` READ for job
  routes (403).
- A sliding-window rate limit per client IP (``rate_limit`` requests per
  ``rate_window`` seconds, off by default): the request over the limit gets 429
  with ``Retry-After`` (seconds until a slot frees), and every request sent while
  blocked gets 429 and **extends** the block (it starts again from that request). ``requests_in_block`` counts those,
  so tests can prove a client waited.
- Queue: one queue per API key, starting three days before the key was added;
  each ``GET …/_queue`` returns up to ``queue_batch`` records and **clears them
  before answering** (a response lost on the wire loses them, as with the real
  service). Batches come newest first; ``flagged``/``verbose`` are omitted when
  false, like the vendor's queue sample. ``handed_out[api_id]`` lists what each
  key was given. Knobs for crash tests: ``queue_delay`` (seconds an answer
  takes after its batch is cleared, i.e. on the wire) and ``hold_queue()``: the
  next queue answer clears its batch, sets ``queue_held`` and waits until
  ``release_queue()``.
- Search: the body grammar of the vendor file (unknown keys, wrong types, both or
  neither of start/end and range, bad ``-<N><unit>`` ranges, ``rows`` outside
  1..10000, negative ``start``, bad ``sort`` → 400). Array criteria match exactly
  (one of the values); a record is excluded when it matches every field given in
  ``exclusions``; ``create_time`` bounds are **inclusive at both ends**. ``query``
  is ``field:value`` terms (or bare words for the description), ANDed,
  case-insensitive substring. Without ``sort`` results come newest first.
  ``rows`` defaults to 100.
- Export: ``POST …/_export`` takes a search body plus ``format`` (``csv`` or
  ``json``); the job snapshots its results, reads ``CREATED`` → ``IN_PROGRESS`` and
  becomes ``COMPLETED`` on its ``job_polls``-th status read (or ``FAILED`` when
  ``fail_jobs`` is set); ``…/progress`` reports ``num_total``/``num_completed``;
  ``…/download`` before completion is 400; ``expire_jobs()`` makes jobs 404.
  JSON output is an array with one record per line.

Data: record ``i`` exists at ``2020-01-01 + i·spacing`` plus a seeded jitter
under ``spacing`` (some records share the previous record's millisecond, to
exercise tie handling), with actor, IP, description and flags drawn from
``rng(seed, org, i)``: the same time range always holds the same records.
Only records up to the current time exist; search and export see the last
``retention`` seconds.

Not modelled: the legacy v3 endpoint, the jobs list route, CSP bearer tokens,
bans for abusive keys, queue/search caps beyond ``rows`` (undocumented), and the
exact-vs-substring semantics of array criteria (undocumented).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import threading
import time
from collections import deque
from typing import Any, Callable

from forwarder import jsoncodec
from forwarder.simulators.base import UTC, Faults, Request, Response, Simulator, format_rfc3339, parse_rfc3339, rng

ORIGIN = dt.datetime(2020, 1, 1, tzinfo=UTC)
QUEUE_START = dt.timedelta(days=3)
AUDITS, JOBS = "org.audits.READ", "jobs.status.READ"
DEMO_API_ID = "SIMAPIKEY1"
DEMO_SECRET = "SIMSECRET0123456789ABCDEF"
DEMO_SECRET_ENV = "FORWARDER_DEMO_CARBON_BLACK_CLOUD_SECRET"

_LIST_FIELDS = ("actor_ip", "actor", "request_url", "description")
_BOOL_FIELDS = ("flagged", "verbose")
_SORTABLE = ("create_time", "actor", "actor_ip", "description", "request_url", "flagged", "verbose")
_SEARCH_KEYS = {"criteria", "exclusions", "query", "rows", "start", "sort"}
_RANGE = re.compile(r"-([0-9]+)([ywdhms])")
_RANGE_UNIT = {"y": 365 * 86400, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_QUERY_TERM = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')

_USERS = ("alice@example.com", "bob@example.com", "carol@example.org", "dave@example.net", "erin@example.com")
_KEYS = ("DEFGHIJKLM", "Y8JNJZFBDR", "GRJSDHRR8Y", "QWERTYUIOP")
_IPS = tuple(f"192.0.2.{n}" for n in range(1, 21)) + tuple(f"198.51.100.{n}" for n in range(1, 21))
_POLICIES = ("Standard", "Monitored", "Advanced", "Servers", "Developers")
_DEVICES = ("WIN-LAPTOP-07", "MAC-DESIGN-02", "LNX-BUILD-11", "WIN-SRV-03")
# (template, flagged, request path or None); {user}/{key}/{policy}/{device}/{n} are filled per record.
_TEMPLATES: tuple[tuple[str, bool, str | None], ...] = (
    ("{user} logged in successfully", False, None),
    ("{user} logged in successfully", False, None),
    ("Connector {key} logged in successfully", False, None),
    ("{user} failed to log in: invalid password", True, None),
    ("{user} logged out", False, None),
    ("Updated policy '{policy}'", False, "/policyservice/v1/orgs/{org}/policies/{n}"),
    ("Created API key {key} with access level 'Audit Reader'", False, "/appservices/v6/orgs/{org}/apikeys"),
    ("Added user {user} with role 'Analyst'", False, "/appservices/v6/orgs/{org}/users"),
    ("Deleted user {user}", False, "/appservices/v6/orgs/{org}/users/{n}"),
    ("Updated report, 'Threat feed {n}'", False, None),
    ("Live Response session started on device {device}", False, "/appservices/v6/orgs/{org}/liveresponse/sessions"),
    ("Access denied for {user} to device {device}", True, None),
)


class _BadRequest(Exception):
    pass


class CarbonBlackCloudSimulator(Simulator):
    """Queue, search and export-job routes of one org, with per-key queues and a rate limiter."""

    VENDOR = "carbon_black_cloud"

    def __init__(
        self,
        *,
        port: int = 0,
        seed: int = 42,
        faults: Faults | None = None,
        org_key: str = "SIMORG01",
        spacing: float = 60.0,
        retention: float = 30 * 86400.0,
        queue_batch: int = 500,
        rate_limit: int | None = None,
        rate_window: float = 300.0,
        job_polls: int = 2,
    ) -> None:
        self.org_key = org_key
        self.spacing = spacing
        self.retention = retention
        self.queue_batch = queue_batch
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.job_polls = job_polls
        self.fail_jobs = False
        self.queue_delay = 0.0
        self.queue_held = threading.Event()
        self._queue_gate: threading.Event | None = None
        self.keys: dict[str, dict[str, Any]] = {}
        self.handed_out: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.requests_in_block = 0
        self.throttled = 0
        self._next_job = 4805565
        self._hits: dict[str, deque[float]] = {}
        self._blocks: dict[str, tuple[float, float]] = {}  # client → (blocked until, block length)
        self._cache: dict[int, dict[str, Any]] = {}
        self._times: dict[int, dt.datetime] = {}
        self._draws: dict[int, tuple[int, bool]] = {}
        self._state = threading.Lock()
        super().__init__(port=port, seed=seed, faults=faults)
        self.add_key(DEMO_API_ID, DEMO_SECRET)

    # -- set-up and test knobs ----------------------------------------------
    def setup(self) -> None:
        logs = r"/audit_log/v1/orgs/(?P<org>[^/]+)/logs"
        jobs = r"/jobs/v1/orgs/(?P<org>[^/]+)/jobs/(?P<job>[^/]+)"
        self.route("GET", logs + "/_queue", self._guarded(AUDITS, self._queue))
        self.route("POST", logs + "/_search", self._guarded(AUDITS, self._search))
        self.route("POST", logs + "/_export", self._guarded(AUDITS, self._export))
        self.route("GET", jobs, self._guarded(JOBS, self._job_route(self._job)))
        self.route("GET", jobs + "/progress", self._guarded(JOBS, self._job_route(self._progress)))
        self.route("GET", jobs + "/download", self._guarded(JOBS, self._job_route(self._download)))

    def add_key(self, api_id: str, secret: str, permissions: tuple[str, ...] = (AUDITS, JOBS)) -> str:
        """Create an API key (its queue starts three days back); return its ``X-Auth-Token`` value."""
        with self._state:
            self.keys[api_id] = {
                "secret": secret,
                "permissions": set(permissions),
                "next": self._first_index(self.now() - QUEUE_START),
            }
            self.handed_out[api_id] = []
        return f"{secret}/{api_id}"

    def demo_source(self, events: int) -> tuple[dict[str, Any], dict[str, str]]:
        """A search-mode source whose first pass reads about ``events`` records."""
        table = {
            "name": "carbon-black-cloud-demo",
            "type": "carbon_black_cloud",
            "base_url": self.url,
            "org_key": self.org_key,
            "api_id": DEMO_API_ID,
            "api_secret": f"env:{DEMO_SECRET_ENV}",
            "mode": "search",
            "lookback": events * self.spacing,
        }
        return table, {DEMO_SECRET_ENV: DEMO_SECRET}

    def expire_jobs(self) -> None:
        """Forget every export job (their routes answer 404 from now on)."""
        with self._state:
            self.jobs.clear()

    def hold_queue(self) -> None:
        """The next queue answer waits, after clearing its batch, until ``release_queue``."""
        self.queue_held.clear()
        self._queue_gate = threading.Event()

    def release_queue(self) -> None:
        """Let a held queue answer go (and stop holding)."""
        gate, self._queue_gate = self._queue_gate, None
        if gate is not None:
            gate.set()

    def queue_position(self, api_id: str) -> int:
        """Index of the next record the key's queue would hand out."""
        with self._state:
            return self.keys[api_id]["next"]

    # -- data ------------------------------------------------------------------
    @staticmethod
    def now() -> dt.datetime:
        """The simulator's clock (records exist up to it)."""
        return dt.datetime.now(UTC)

    def _draw(self, i: int) -> tuple[int, bool]:
        """Record ``i``'s jitter in milliseconds and whether it may share its predecessor's millisecond."""
        drawn = self._draws.get(i)
        if drawn is None:
            r = rng(self.seed, self.org_key, i, "t")
            drawn = self._draws[i] = (int(r.random() * self.spacing * 1000), i > 0 and r.random() < 0.08)
        return drawn

    def _base_time(self, i: int) -> dt.datetime:
        return ORIGIN + dt.timedelta(milliseconds=round(i * self.spacing * 1000) + self._draw(i)[0])

    def _tied(self, i: int) -> bool:
        """Record ``i`` shares record ``i-1``'s millisecond (never two ties in a row)."""
        return self._draw(i)[1] and not self._draw(i - 1)[1]

    def _time(self, i: int) -> dt.datetime:
        t = self._times.get(i)
        if t is None:
            t = self._times[i] = self._base_time(i - 1) if self._tied(i) else self._base_time(i)
        return t

    def _first_index(self, when: dt.datetime) -> int:
        """The first record index at or after ``when``."""
        i = max(0, int((when - ORIGIN).total_seconds() // self.spacing) - 2)
        while self._time(i) < when:
            i += 1
        return i

    def record(self, i: int) -> dict[str, Any]:
        """Record ``i`` as search returns it (always with flagged/verbose)."""
        cached = self._cache.get(i)
        if cached is not None:
            return cached
        r = rng(self.seed, self.org_key, i)
        template, flagged, path = r.choice(_TEMPLATES)
        fill = {
            "user": r.choice(_USERS),
            "key": r.choice(_KEYS),
            "policy": r.choice(_POLICIES),
            "device": r.choice(_DEVICES),
            "n": r.randint(1, 999),
            "org": self.org_key,
        }
        actor = fill["key"] if template.startswith("Connector") or "API key" in template else fill["user"]
        ip = _IPS[r.randrange(len(_IPS))]
        if self._tied(i):  # differ from the record sharing this millisecond, so the two ids differ
            ip = _IPS[(_IPS.index(self.record(i - 1)["actor_ip"]) + 1) % len(_IPS)]
        record = {
            "org_key": self.org_key,
            "actor_ip": ip,
            "actor": actor,
            "request_url": f"https://defense.example.net{path.format(**fill)}" if path else None,
            "description": template.format(**fill),
            "flagged": flagged,
            "verbose": r.random() < 0.05,
            "create_time": format_rfc3339(self._time(i), 3),
        }
        self._cache[i] = record
        return record

    def records_between(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        """Records with ``start <= create_time < end`` (and not in the future), oldest first."""
        out = []
        i = self._first_index(start)
        limit = min(end, self.now() + dt.timedelta(microseconds=1))
        while self._time(i) < limit:
            out.append(self.record(i))
            i += 1
        return out

    # -- guard: rate limit, then auth ------------------------------------------
    def _guarded(self, permission: str, handler: Callable[..., Response]) -> Callable[..., Response]:
        def guarded(request: Request, org: str, **groups: str) -> Response:
            throttled = self._throttle(request.client)
            if throttled is not None:
                return throttled
            api_id, problem = self._authenticate(request)
            if problem is not None:
                return problem
            key = self.keys[api_id]
            if org != self.org_key:
                return _error(403, f"API key is not valid for org {org}")
            if permission not in key["permissions"]:
                return _error(403, f"API key lacks {permission}")
            try:
                return handler(request, api_id=api_id, **groups)
            except _BadRequest as exc:
                return _error(400, str(exc))

        return guarded

    def _throttle(self, client: str) -> Response | None:
        if not self.rate_limit:
            return None
        now = time.monotonic()
        with self._state:
            blocked, length = self._blocks.get(client, (0.0, 0.0))
            if now < blocked:  # a request inside the block starts it again
                self.requests_in_block += 1
                self.throttled += 1
                wait = length
                self._blocks[client] = (now + wait, length)
            else:
                hits = self._hits.setdefault(client, deque())
                while hits and hits[0] <= now - self.rate_window:
                    hits.popleft()
                if len(hits) < self.rate_limit:
                    hits.append(now)
                    return None
                self.throttled += 1
                wait = hits[0] + self.rate_window - now
                self._blocks[client] = (now + wait, wait)
        # Rounded up: a client that waits exactly Retry-After must not land inside the block.
        return _error(429, "Too many requests", {"Retry-After": f"{max(math.ceil(wait * 1000), 1) / 1000:.3f}"})

    def _authenticate(self, request: Request) -> tuple[str, Response | None]:
        token = request.header("x-auth-token")
        if not token or "/" not in token:
            return "", _error(401, "X-Auth-Token must be '<API Secret Key>/<API ID>'")
        secret, _, api_id = token.rpartition("/")
        key = self.keys.get(api_id)
        if key is None or key["secret"] != secret:
            return "", _error(401, "Unauthorized")
        return api_id, None

    # -- routes ----------------------------------------------------------------
    def _queue(self, request: Request, api_id: str) -> Response:
        with self._state:
            key = self.keys[api_id]
            start, batch = key["next"], []
            now = self.now()
            i = start
            while len(batch) < self.queue_batch and self._time(i) <= now:
                batch.append(_queue_shape(self.record(i)))
                i += 1
            key["next"] = i  # cleared before the answer leaves
            self.handed_out[api_id].extend(batch)
            gate = self._queue_gate
        if gate is not None:
            self.queue_held.set()
            gate.wait()
        if self.queue_delay:
            time.sleep(self.queue_delay)
        batch.reverse()
        return Response.json({"num_found": len(batch), "num_available": len(batch), "results": batch})

    def _search(self, request: Request, api_id: str) -> Response:
        body = _json_object(request)
        unknown = set(body) - _SEARCH_KEYS
        if unknown:
            raise _BadRequest(f"unknown field {sorted(unknown)[0]!r}")
        rows = body.get("rows", 100)
        start = body.get("start", 0)
        if not _is_int(rows) or not 1 <= rows <= 10000:
            raise _BadRequest("rows must be an integer from 1 to 10000")
        if not _is_int(start) or start < 0:
            raise _BadRequest("start must be a non-negative integer")
        matches = self._matches(body)
        return Response.json({"num_found": len(matches), "num_available": len(matches), "results": matches[start : start + rows]})

    def _export(self, request: Request, api_id: str) -> Response:
        body = _json_object(request)
        fmt = body.pop("format", None)
        if fmt not in ("csv", "json"):
            raise _BadRequest("format must be 'csv' or 'json'")
        unknown = set(body) - _SEARCH_KEYS
        if unknown:
            raise _BadRequest(f"unknown field {sorted(unknown)[0]!r}")
        matches = self._matches(body)
        stamp = format_rfc3339(self.now(), 6)
        with self._state:
            job_id = self._next_job
            self._next_job += 1
            self.jobs[job_id] = {"format": fmt, "records": matches, "reads": 0, "create_time": stamp, "last_update_time": stamp}
        return Response.json({"job_id": job_id})

    def _job_route(self, handler: Callable[[dict[str, Any], int], Response]) -> Callable[..., Response]:
        """Look the job up (404 if unknown) and call ``handler(state, job_id)`` under the state lock."""

        def route(request: Request, api_id: str, job: str) -> Response:
            with self._state:
                state = self.jobs.get(int(job)) if job.isdigit() else None
                if state is None:
                    return _error(404, f"job {job} not found")
                return handler(state, int(job))

        return route

    def _job(self, state: dict[str, Any], job_id: int) -> Response:
        state["reads"] += 1
        state["last_update_time"] = format_rfc3339(self.now(), 6)
        return Response.json(
            {
                "id": job_id,
                "type": "EXTERNAL",
                "job_parameters": {"job_parameters": None},
                "org_key": self.org_key,
                "status": self._status(state),
                "create_time": state["create_time"],
                "last_update_time": state["last_update_time"],
            }
        )

    def _status(self, state: dict[str, Any]) -> str:
        if state["reads"] >= self.job_polls:
            return "FAILED" if self.fail_jobs else "COMPLETED"
        return "CREATED" if state["reads"] <= 1 else "IN_PROGRESS"

    def _progress(self, state: dict[str, Any], job_id: int) -> Response:
        total = len(state["records"])
        done = total if self._status(state) == "COMPLETED" else total * state["reads"] // max(self.job_polls, 1)
        return Response.json({"num_total": total, "num_completed": done, "message": ""})

    def _download(self, state: dict[str, Any], job_id: int) -> Response:
        if self._status(state) != "COMPLETED":
            return _error(400, f"job {job_id} is not completed")
        records = state["records"]
        if state["format"] == "json":
            body = b"[\n" + b",\n".join(jsoncodec.dumps(r) for r in records) + b"\n]\n"
            return Response(200, body, {"Content-Type": "application/json"})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(_SORTABLE) + ["org_key"])
        writer.writeheader()
        writer.writerows(records)
        return Response(200, out.getvalue().encode(), {"Content-Type": "text/csv"})

    # -- search semantics ----------------------------------------------------
    def _matches(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Records selected by criteria/exclusions/query, sorted as asked."""
        now = self.now()
        criteria = _filters(body.get("criteria", {}), "criteria", now)
        exclusions = _filters(body.get("exclusions", {}), "exclusions", now)
        terms = _query_terms(body.get("query"))
        order = _sort_spec(body.get("sort"))
        low, high = criteria.pop("create_time", (ORIGIN, now))  # the index walk applies the time bounds
        low, high = max(low, now - dt.timedelta(seconds=self.retention)), min(high, now)
        selected = []
        i = self._first_index(low)
        while self._time(i) <= high:
            record = self.record(i)
            i += 1
            if not _match_all(record, criteria):
                continue
            if exclusions and _match_all(record, exclusions):
                continue
            if not all(_term_matches(record, field, value) for field, value in terms):
                continue
            selected.append(record)
        if not order:
            selected.reverse()
        for field, descending in reversed(order):
            selected.sort(key=lambda r, f=field: _sort_value(r.get(f)), reverse=descending)
        return selected


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response.json({"success": False, "message": message}, status, headers)


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise _BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("body must be a JSON object")
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _filters(spec: Any, where: str, now: dt.datetime) -> dict[str, Any]:
    """Validate criteria/exclusions; create_time becomes an inclusive (low, high) pair."""
    if not isinstance(spec, dict):
        raise _BadRequest(f"{where} must be an object")
    out: dict[str, Any] = {}
    for field, value in spec.items():
        if field in _LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _BadRequest(f"{where}.{field} must be an array of strings")
            out[field] = set(value)
        elif field in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise _BadRequest(f"{where}.{field} must be a boolean")
            out[field] = value
        elif field == "create_time":
            out[field] = _time_range(value, f"{where}.create_time", now)
        else:
            raise _BadRequest(f"{where}: unknown field {field!r}")
    return out


def _time_range(value: Any, where: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if not isinstance(value, dict) or set(value) - {"start", "end", "range"}:
        raise _BadRequest(f"{where} must be {{start, end}} or {{range}}")
    if "range" in value:
        if "start" in value or "end" in value:
            raise _BadRequest(f"{where}: give range or start/end, not both")
        m = _RANGE.fullmatch(value["range"]) if isinstance(value["range"], str) else None
        if not m:
            raise _BadRequest(f"{where}.range must look like -5d (units y w d h m s)")
        try:
            return now - dt.timedelta(seconds=int(m.group(1)) * _RANGE_UNIT[m.group(2)]), now
        except (ValueError, OverflowError):
            raise _BadRequest(f"{where}.range reaches back too far") from None
    if "start" not in value or "end" not in value:
        raise _BadRequest(f"{where}: start and end must both be given")
    if not isinstance(value["start"], str) or not isinstance(value["end"], str):
        raise _BadRequest(f"{where}: start and end must be ISO 8601 strings")
    try:
        return parse_rfc3339(value["start"]), parse_rfc3339(value["end"])
    except ValueError as exc:
        raise _BadRequest(f"{where}: {exc}") from None


def _match_all(record: dict[str, Any], spec: dict[str, Any]) -> bool:
    for field, wanted in spec.items():
        if field == "create_time":
            t = parse_rfc3339(record["create_time"])
            if not wanted[0] <= t <= wanted[1]:
                return False
        elif field in _BOOL_FIELDS:
            if bool(record.get(field)) != wanted:
                return False
        elif record.get(field) not in wanted:
            return False
    return True


def _query_terms(query: Any) -> list[tuple[str, str]]:
    if query is None:
        return []
    if not isinstance(query, str):
        raise _BadRequest("query must be a string")
    terms = []
    for m in _QUERY_TERM.finditer(query):
        field, value = m.group(1) or "description", (m.group(2) if m.group(2) is not None else m.group(3))
        if value == "AND" and m.group(1) is None:
            continue
        if field not in _SORTABLE or field == "create_time":
            raise _BadRequest(f"query: unknown field {field!r}")
        terms.append((field, value.lower()))
    return terms


def _term_matches(record: dict[str, Any], field: str, value: str) -> bool:
    return value in str(record.get(field) or "").lower()


def _sort_spec(sort: Any) -> list[tuple[str, bool]]:
    if sort is None:
        return []
    if not isinstance(sort, list):
        raise _BadRequest("sort must be an array of {field, order}")
    out = []
    for item in sort:
        if not isinstance(item, dict) or item.get("field") not in _SORTABLE or item.get("order") not in ("ASC", "DESC"):
            raise _BadRequest("sort items need a known field and order ASC or DESC")
        out.append((item["field"], item["order"] == "DESC"))
    return out


def _sort_value(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def _queue_shape(record: dict[str, Any]) -> dict[str, Any]:
    """The queue omits flagged/verbose when false (vendor sample)."""
    return {k: v for k, v in record.items() if not (k in _BOOL_FIELDS and not v)}
