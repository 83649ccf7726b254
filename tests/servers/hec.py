"""A strict Splunk HTTP Event Collector (HEC) for tests and benchmarks.

Splunk cannot run here, so the HEC sink is proven against this server, which
answers as Splunk documents and as probes of Splunk 10.4 measured (facts:
``shared/targets/splunk-hec.md``). It listens on 127.0.0.1 only.

Modelled:

- Endpoints: ``POST /services/collector``, ``/services/collector/event`` and
  ``/event/1.0`` (JSON envelopes); ``GET /services/collector/health`` (and
  ``/health/1.0``), which checks no token and answers code 17, or 18 when
  ``healthy`` is false; ``POST /services/collector/ack``. Other methods on
  those paths → 405, unknown paths → 404, both with Splunk's JSON body.
- Auth in Splunk's order: no credentials → 401 code 2; a scheme other than
  ``Splunk``/``Basic`` or an empty token → 401 code 3; unknown token → 403
  code 4; disabled token → 403 code 1; ``?token=`` on a token without
  query-string auth → 400 code 16 (checked after the token itself).
- Channel (header ``X-Splunk-Request-Channel`` or ``?channel=``): a non-GUID
  → 400 code 11; missing on a token with indexer acknowledgement → 400 code 10.
- Tokens: enabled/disabled, ack on/off, allowed indexes, default index.
- Body: ``Content-Encoding: gzip`` is decompressed, any other encoding → 415
  with an HTML body; a body over ``max_content_length`` bytes (as sent on the
  wire) → 413 with an HTML body; envelopes are concatenated JSON objects (an
  array is not an envelope: code 6).
- Per object, stopping at the first bad one (objects before it are indexed,
  it and the rest are not; the answer carries ``invalid-event-number``):
  not an object, bad JSON, ``event`` null/false, non-string metadata or a
  non-numeric ``time`` → code 6; no ``event`` and no ``fields`` → 12; blank
  string ``event`` → 13; nested ``fields`` values → 15; index not allowed →
  7 reported one past the culprit (Splunk's measured offset). ``fields``
  without ``event`` is skipped silently. An unknown top-level key drops that
  object and every later one silently (200), or → 400 code 5 when it is the
  first object; an empty body → 400 code 5.
- Indexer acknowledgement: ``ackId`` per channel from 0 on each accepted
  request; ``/ack`` answers ``true`` for an id once, then ``false``; unknown
  ids and ids of other channels are ``false``; a token without ack → 400 code
  14; pending ids per channel capped by ``max_pending_acks`` → 429 code 27.
- Fault knobs: ``inject`` (answer the next n event requests with a
  retryable code: 8 → 500, 9/18/19/20/23 → 503, 26/27 → 429, optional
  ``Retry-After``; or index them and answer 200 with queue-pressure code
  24/25), ``lose_acks`` (the next n accepted requests never read
  ``true``, with their events indexed or not), ``ack_delay`` (every ackId
  reads ``false`` on its first n polls: indexing delay counted in polls, so
  tests need no clock), ``cut_responses`` (index, then
  cut the answer mid-body and close the connection), ``healthy``.
- Records: ``indexed`` holds every event it indexed with its resolved
  metadata (token defaults applied), ``requests_seen`` every request's path,
  status, code, headers of interest and number of events indexed.
  ``record=False`` keeps only the count (for benchmarks), which
  ``GET /_test/count`` reports (not a Splunk endpoint).

Not modelled: ``/raw`` and its line breaking, metrics events, ``OPTIONS``
preflight, ``Retry-After`` on Splunk's own busy answers (Splunk sends none;
``inject`` can add one), a size limit on the decompressed body, indexing
delay in time (``ack_delay`` counts polls instead), queue pressure arising
by itself (24/25 come only from ``inject``), channel idle clean-up,
cookies/load-balancer stickiness, the token-management codes 21/22, time
magnitudes other than 13-digit ms and 19-digit ns integers, numeric
``fields`` values being refused (Splunk's docs say strings only; accepted
here), and which codes Splunk gives invalid metadata types or a bad ``time``
(code 6 here is our inference). An empty allowed-index list means any index
(Splunk's UI default differs by version); the token's default index is
always allowed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import json
import re
import ssl
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from forwarder import jsoncodec
from forwarder.simulators.base import Request, Response, Simulator

TEXTS = {
    0: "Success",
    1: "Token disabled",
    2: "Token is required",
    3: "Invalid authorization",
    4: "Invalid token",
    5: "No data",
    6: "Invalid data format",
    7: "Incorrect index",
    8: "Internal server error",
    9: "Server is busy",
    10: "Data channel is missing",
    11: "Invalid data channel",
    12: "Event field is required",
    13: "Event field cannot be blank",
    14: "ACK is disabled",
    15: "Error in handling indexed fields",
    16: "Query string authorization is not enabled",
    17: "HEC is healthy",
    18: "HEC is unhealthy, queues are full",
    19: "HEC is unhealthy, ack service unavailable",
    20: "HEC is unhealthy, queues are full, ack service unavailable",
    23: "Server is shutting down",
    24: "HEC queue approaching capacity",
    25: "HEC ACK approaching capacity",
    26: "HEC queue at capacity",
    27: "HEC ACK channel at capacity",
}
STATUS = {
    0: 200, 1: 403, 2: 401, 3: 401, 4: 403, 5: 400, 6: 400, 7: 400, 8: 500, 9: 503, 10: 400,
    11: 400, 12: 400, 13: 400, 14: 400, 15: 400, 16: 400, 17: 200, 18: 503, 19: 503, 20: 503,
    23: 503, 24: 200, 25: 200, 26: 429, 27: 429,
}
RETRYABLE_CODES = (8, 9, 18, 19, 20, 23, 26, 27)
PRESSURE_CODES = (24, 25)
EVENT_PATHS = ("/services/collector", "/services/collector/event", "/services/collector/event/1.0")
HEALTH_PATHS = ("/services/collector/health", "/services/collector/health/1.0")
ACK_PATH = "/services/collector/ack"
ENVELOPE_KEYS = frozenset({"time", "host", "source", "sourcetype", "index", "event", "fields"})
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NOT_FOUND = {"text": "The requested URL was not found on this server.", "code": 404}
_HTML_413 = b"<html><head><title>413 Content Too Large</title></head><body>Content too large</body></html>"
_HTML_415 = b"<html><head><title>415 Unsupported Media Type</title></head><body>Unsupported encoding</body></html>"


@dataclass
class HecToken:
    """One HEC token as configured in Splunk."""

    value: str
    name: str = "forwarder"
    enabled: bool = True
    ack: bool = False
    indexes: tuple[str, ...] = ()  # allowed indexes; empty: any
    default_index: str = "main"
    query_string_auth: bool = False


@dataclass(slots=True)
class Indexed:
    """One event as Splunk would have indexed it."""

    index: str
    host: str
    source: str
    sourcetype: str
    time: float
    event: Any
    channel: str | None


@dataclass(slots=True)
class Seen:
    """One request as the server answered it."""

    method: str
    path: str
    status: int
    code: int | None
    headers: dict[str, str]
    objects: int = 0


@dataclass
class _Channel:
    next_id: int = 0
    ready: set[int] = field(default_factory=set)  # indexed, not yet read as true
    unripe: dict[int, int] = field(default_factory=dict)  # ackId -> polls still answered false
    lost: set[int] = field(default_factory=set)  # will never read true


@dataclass
class _Fault:
    code: int
    retry_after: float | None


def hec(code: int, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """Splunk's JSON answer for ``code`` with its documented HTTP status."""
    return Response.json({"text": TEXTS[code], "code": code, **extra}, STATUS[code], headers)


class HecServer(Simulator):
    """A strict HEC on 127.0.0.1 (see the module docstring for what it models)."""

    VENDOR = "splunk_hec"

    def __init__(
        self,
        tokens: list[HecToken] | None = None,
        *,
        max_content_length: int = 800 * 1024 * 1024,
        max_pending_acks: int = 1_000_000,
        record: bool = True,
        tls: ssl.SSLContext | None = None,
        hostname: str = "hec-test-indexer",
        port: int = 0,
    ) -> None:
        self.tokens_by_value = {t.value: t for t in (tokens or [HecToken("00000000-0000-0000-0000-000000000001")])}
        self.max_content_length = max_content_length
        self.max_pending_acks = max_pending_acks
        self.record = record
        self.hostname = hostname
        self.healthy = True
        self.indexed: list[Indexed] = []
        self.indexed_count = 0
        self.requests_seen: list[Seen] = []
        self._state = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._faults: list[_Fault] = []
        self._lose: list[bool] = []  # per upcoming accepted request: are its events indexed?
        self._cut = 0
        self.ack_delay = 0  # polls each new ackId reads false before it can read true
        super().__init__(port=port, tls=tls)

    # -- knobs -------------------------------------------------------------
    def inject(self, n: int, code: int = 9, retry_after: float | None = None) -> None:
        """Answer the next ``n`` event requests with ``code``.

        A retryable code refuses the request (a busy period, optionally with
        ``Retry-After``); 24 or 25 index it and answer 200 with that code.
        """
        if code not in RETRYABLE_CODES + PRESSURE_CODES:
            raise ValueError(f"code {code} is not one of {RETRYABLE_CODES + PRESSURE_CODES}")
        with self._state:
            self._faults.extend(_Fault(code, retry_after) for _ in range(n))

    def lose_acks(self, n: int, *, indexed: bool) -> None:
        """The next ``n`` accepted requests get ackIds that never read true.

        ``indexed=True``: the events were indexed, only the ack is lost (a resend
        duplicates them). ``indexed=False``: the indexer lost the events too.
        """
        with self._state:
            self._lose.extend([indexed] * n)

    def cut_responses(self, n: int) -> None:
        """Index the next ``n`` event requests, then cut the answer and close the connection."""
        with self._state:
            self._cut += n

    def ids(self) -> list[Any]:
        """The ``event.id`` of every indexed event, in index order."""
        return [e.event.get("id") if isinstance(e.event, dict) else None for e in self.indexed]

    # -- dispatch ----------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        """Route like Splunk's HEC; record the request."""
        with self._state:
            self.requests += 1
        path = request.path.rstrip("/") or "/"
        objects = 0
        if path in EVENT_PATHS:
            resp, objects = self._event(request) if request.method == "POST" else (Response.json(_NOT_FOUND, 405), 0)
        elif path == "/_test/count":  # not Splunk: lets a benchmark in another process verify
            resp = Response.json({"indexed": self.indexed_count})
        elif path in HEALTH_PATHS:
            resp = self._health() if request.method == "GET" else Response.json(_NOT_FOUND, 405)
        elif path == ACK_PATH:
            resp = self._ack(request) if request.method == "POST" else Response.json(_NOT_FOUND, 405)
        else:
            resp = Response.json(_NOT_FOUND, 404)
        code = None
        if resp.headers.get("Content-Type") == "application/json":
            body = jsoncodec.loads(resp.body)
            code = body.get("code") if isinstance(body, dict) else None
        kept = {k: v for k, v in request.headers.items() if k in ("content-type", "content-encoding", "x-splunk-request-channel", "user-agent")}
        kept["authorization-scheme"] = (request.header("authorization") or "").partition(" ")[0]
        with self._state:
            self.requests_seen.append(Seen(request.method, path, resp.status, code, kept, objects))
        return resp

    def _health(self) -> Response:
        return hec(17 if self.healthy else 18)

    def _authorize(self, request: Request) -> tuple[HecToken | None, Response | None]:
        header = request.header("authorization")
        query_token = request.arg("token")
        if header is None and query_token is None:
            return None, hec(2)
        if header is not None:
            scheme, _, credential = header.partition(" ")
            value = credential.strip()
            if scheme == "Basic":
                try:
                    value = base64.b64decode(value, validate=True).decode().partition(":")[2]
                except (binascii.Error, UnicodeDecodeError):
                    return None, hec(3)
            elif scheme != "Splunk":
                return None, hec(3)
            if not value:
                return None, hec(3)
        else:
            value = query_token or ""
        token = self.tokens_by_value.get(value)
        if token is None:
            return None, hec(4)
        if not token.enabled:
            return None, hec(1)
        if header is None and not token.query_string_auth:
            return None, hec(16)
        return token, None

    def _channel(self, request: Request, token: HecToken) -> tuple[str | None, Response | None]:
        channel = request.header("x-splunk-request-channel") or request.arg("channel")
        if channel is not None and not _GUID.match(channel):
            return None, hec(11)
        if channel is None and token.ack:
            return None, hec(10)
        return channel, None

    def _ack(self, request: Request) -> Response:
        token, refusal = self._authorize(request)
        if refusal is not None:
            return refusal
        assert token is not None
        if not token.ack:
            return hec(14)
        channel, refusal = self._channel(request, token)
        if refusal is not None:
            return refusal
        try:
            asked = jsoncodec.loads(request.body)["acks"]
            if not isinstance(asked, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in asked):
                raise ValueError("acks must be a list of integers")
        except (ValueError, KeyError, TypeError):
            return hec(6)
        with self._state:
            chan = self._channels.get(channel or "")
            answer = {}
            for ack_id in asked:
                done = chan is not None and ack_id in chan.ready
                if done and chan.unripe.get(ack_id):
                    chan.unripe[ack_id] -= 1
                    done = False
                if done:
                    chan.ready.discard(ack_id)  # true only once
                answer[str(ack_id)] = done
        return Response.json({"acks": answer})

    def _event(self, request: Request) -> tuple[Response, int]:
        """The answer to an event request and how many events it indexed."""
        token, refusal = self._authorize(request)
        if refusal is not None:
            return refusal, 0
        assert token is not None
        channel, refusal = self._channel(request, token)
        if refusal is not None:
            return refusal, 0
        with self._state:
            fault = self._faults.pop(0) if self._faults else None
            chan = self._channels.setdefault(channel, _Channel()) if token.ack and channel else None
            full = chan is not None and len(chan.ready) + len(chan.lost) >= self.max_pending_acks
        if fault is not None and fault.code in RETRYABLE_CODES:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            return hec(fault.code, headers), 0
        if full:
            return hec(27), 0
        if len(request.body) > self.max_content_length:
            return Response(413, _HTML_413, {"Content-Type": "text/html"}), 0
        encoding = (request.header("content-encoding") or "").strip().lower()
        body = request.body
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                return hec(6), 0
        elif encoding not in ("", "identity"):
            return Response(415, _HTML_415, {"Content-Type": "text/html"}), 0
        objects, bad_json_at = _split_objects(body)
        if not objects and bad_json_at is None:
            return hec(5), 0
        accepted, failure = self._validate(objects, token, channel)
        if failure is None and bad_json_at is not None:
            failure = hec(6, **{"invalid-event-number": bad_json_at})
        with self._state:
            cut = failure is None and self._cut > 0
            if cut:
                self._cut -= 1
            lose = self._lose.pop(0) if failure is None and chan is not None and self._lose else None
            if lose is not False:
                self.indexed_count += len(accepted)
                if self.record:
                    self.indexed.extend(accepted)
            ack_id = None
            if failure is None and chan is not None:
                ack_id = chan.next_id
                chan.next_id += 1
                (chan.lost if lose is not None else chan.ready).add(ack_id)
                if self.ack_delay:
                    chan.unripe[ack_id] = self.ack_delay
        success = fault.code if fault is not None else 0
        resp = failure or (hec(success, ackId=ack_id) if ack_id is not None else hec(success))
        if cut:
            resp.headers["X-Truncated"] = str(len(resp.body))
        return resp, len(accepted) if lose is not False else 0

    def _validate(self, objects: list[Any], token: HecToken, channel: str | None) -> tuple[list[Indexed], Response | None]:
        """Index objects in order up to the first bad one (Splunk's partial-batch rule)."""
        accepted: list[Indexed] = []
        for k, obj in enumerate(objects):
            if not isinstance(obj, dict):
                return accepted, hec(6, **{"invalid-event-number": k})
            if not ENVELOPE_KEYS.issuperset(obj):
                # Measured: this object and all later ones are dropped without a word.
                return accepted, (hec(5) if k == 0 else None)
            if "event" not in obj:
                if "fields" in obj:
                    continue  # measured: silently skipped
                return accepted, hec(12, **{"invalid-event-number": k})
            event = obj["event"]
            if event is None or event is False:
                return accepted, hec(6, **{"invalid-event-number": k})
            if isinstance(event, str) and not event.strip():
                return accepted, hec(13, **{"invalid-event-number": k})
            fields = obj.get("fields")
            if fields is not None and not _flat_fields(fields):
                return accepted, hec(15, **{"invalid-event-number": k})
            meta = [obj.get(key) for key in ("host", "source", "sourcetype", "index")]
            if any(value is not None and not isinstance(value, str) for value in meta):
                return accepted, hec(6, **{"invalid-event-number": k})
            when = _event_time(obj.get("time"))
            if when is None:
                return accepted, hec(6, **{"invalid-event-number": k})
            host, source, sourcetype, index = meta
            index = index or token.default_index
            if token.indexes and index not in token.indexes and index != token.default_index:
                return accepted, hec(7, **{"invalid-event-number": k + 1})
            accepted.append(
                Indexed(
                    index=index,
                    host=host or self.hostname,
                    source=source or f"http:{token.name}",
                    sourcetype=sourcetype or "httpevent",
                    time=when,
                    event=event,
                    channel=channel,
                )
            )
        return accepted, None


def _split_objects(body: bytes) -> tuple[list[Any], int | None]:
    """Concatenated JSON values; the index of the first unparsable one (or None).

    Fast path: one value per line (what well-behaved clients send); otherwise
    the general decoder reads values back to back.
    """
    try:
        return [jsoncodec.loads(line) for line in body.split(b"\n") if line.strip()], None
    except ValueError:
        pass
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return [], 0
    decoder = json.JSONDecoder()
    objects: list[Any] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos == end:
            return objects, None
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return objects, len(objects)
        objects.append(obj)


def _flat_fields(fields: Any) -> bool:
    if not isinstance(fields, dict):
        return False
    for value in fields.values():
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                return False
        elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
            return False
    return True


def _event_time(value: Any) -> float | None:
    """Epoch seconds from ``time``; 13-digit integers are ms, 19-digit ns (as Splunk reads them)."""
    if value is None:
        return time.time()
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value) if value.isdigit() else float(value)
        except ValueError:
            return None
    if isinstance(value, int):
        digits = len(str(abs(value)))
        return value / 1e9 if digits == 19 else value / 1e3 if digits == 13 else float(value)
    if isinstance(value, float):
        return value
    return None


def main() -> None:
    """Serve in the foreground; prints the URL (used by ``bench/bench_splunk_hec.py``)."""
    parser = argparse.ArgumentParser(description="strict local Splunk HEC")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="00000000-0000-0000-0000-000000000001")
    parser.add_argument("--ack", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="keep only the count of indexed events")
    args = parser.parse_args()
    server = HecServer([HecToken(args.token, ack=args.ack)], record=not args.no_record, port=args.port)
    server.start()
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
