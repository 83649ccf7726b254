"""Splunk HTTP Event Collector sink.

Wire format: ``POST <url>/services/collector/event`` with ``Authorization:
Splunk <token>`` and a request channel (always sent: tokens with indexer
acknowledgement require one, others ignore it). The body is the envelopes of
``forwarder.splunk_event.hec_event`` concatenated one per line — never a JSON
array — gzip-compressed by default, and cut so that no request carries more
than ``batch_bytes`` before compression.

What each answer means (HEC codes, ``shared/targets/splunk-hec.md``):

- 200 code 0: accepted (with ``ack = true``: only once its ``ackId`` reads
  true on ``/services/collector/ack``; unacknowledged after ``ack_timeout``
  the request is sent again — at-least-once, so Splunk may hold duplicates,
  recognisable by ``event.id``). Codes 24/25 (queue nearly full) are accepted
  too, followed by a pause of ``backoff_base`` before the next request.
- 429, 500, 502, 503, 504 and connection errors (HEC codes 8, 9, 18–20, 23,
  26, 27): retried by ``forwarder/http.py`` with jittered exponential backoff
  (``[sink.http] retries``, ``backoff_base``, ``Retry-After`` honoured), each
  attempt going to the next URL, so a down or busy indexer fails over. The
  whole request is retried, even when a busy answer names an
  ``invalid-event-number`` (events before it may then be indexed twice).
- 400 with ``invalid-event-number`` k for a bad event (codes 6, 12, 13, 15):
  events before k were indexed, event k is returned as ``Rejected`` with
  Splunk's reason, and the rest are sent again. With acks on, the events
  before k are sent again as well: a refused request gets no ``ackId``.
- 400 code 7 (index not allowed for the token), 401/403 (token missing,
  invalid or disabled) and the other 400s: never retried; the delivery fails
  with one line naming the code and what to fix.
- 413: the request is split in halves until it fits; a single event that
  still does not fit is rejected.

A 200 whose body is not HEC's JSON fails the delivery: a URL pointing at
something that is not HEC must not swallow events.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

import requests

from forwarder import compression, jsoncodec
from forwarder.config import SinkConfig
from forwarder.errors import AuthError, HttpError, SinkError
from forwarder.event import AuditEvent
from forwarder.http import HttpClient, safe_url
from forwarder.options import Option, address_problem, require_tls
from forwarder.sinks.base import Rejected, Sink
from forwarder.splunk_event import hec_line, hec_metadata, override_problem, rename_stanzas, sourcetype_for

log = logging.getLogger("forwarder.sinks.splunk_hec")

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
HEALTH_PATH = "/services/collector/health"

MEANING = {
    1: "token disabled: enable it in Splunk or use another token",
    2: "token is required: no Authorization header reached Splunk",
    3: "invalid authorization: the Authorization header was not accepted",
    4: "invalid token: Splunk does not know this token; check the sink's token",
    5: "no data",
    6: "invalid data format",
    7: "incorrect index: the index is not allowed for this token; fix the sink's index or the token's allowed indexes",
    8: "internal server error",
    9: "server is busy",
    10: "data channel is missing",
    11: "invalid data channel",
    12: "event field is required",
    13: "event field cannot be blank",
    14: "ACK is disabled on this token: set ack = false or enable indexer acknowledgement on the token",
    15: "error in handling indexed fields",
    16: "query string authorization is not enabled",
    17: "HEC is healthy",
    18: "HEC is unhealthy, queues are full",
    19: "HEC is unhealthy, ack service unavailable",
    20: "HEC is unhealthy, queues are full, ack service unavailable",
    23: "server is shutting down",
    24: "HEC queue approaching capacity",
    25: "HEC ACK approaching capacity",
    26: "HEC queue at capacity",
    27: "HEC ACK channel at capacity",
}
PER_EVENT_CODES = frozenset({6, 12, 13, 15})
ACCEPTED_CODES = frozenset({0, 24, 25})
SLOW_DOWN_CODES = frozenset({24, 25})
_HANDLED = (200, 400, 401, 403, 413)
_ENCODE_STEP = 500  # events encoded at a time, so a request can leave before the batch is encoded


def _check_urls(urls: list[Any]) -> str | None:
    if not urls:
        return "needs at least one HEC URL, e.g. https://splunk.example.com:8088"
    for url in urls:
        if not isinstance(url, str):
            return f"{url!r} is not a URL"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{safe_url(url)!r} is not an http(s) URL"
        if "/services/collector" in parts.path:
            return f"give the base URL without the path, e.g. {parts.scheme}://{parts.netloc}"
        if parts.query or parts.username or parts.password:
            return "must not carry a query string or credentials (the token goes in 'token')"
        problem = address_problem(url)
        if problem:
            return f"{safe_url(url)!r} {problem}"
    return None


@dataclass
class _Sent:
    """A request Splunk took with indexer acknowledgement on, waiting for its ackId."""

    base: str
    ack_id: int
    events: list[AuditEvent]
    lines: list[bytes]


class SplunkHecSink(Sink):
    """Deliver events to Splunk through the HTTP Event Collector."""

    TYPE = "splunk_hec"
    OPTIONS = {
        "url": Option("list", help="HEC base URL(s), e.g. https://splunk:8088; several are used round-robin with failover", check=_check_urls),
        "token": Option("secret", help="HEC token (env:NAME or file:PATH)"),
        "index": Option("str", None, "target index (default: the token's default index)"),
        "host": Option("str", None, "host field (default: Splunk's, the HEC host)"),
        "source": Option("str", None, "source field (default: Splunk's, http:<token name>)"),
        "sourcetypes": Option("dict", {}, "sourcetype per vendor or dataset, overriding <vendor>:<product>:audit (one per vendor; `check` prints the props.conf rename that keeps the add-on's CIM mapping)", check=override_problem),
        "gzip": Option("bool", True, "compress requests"),
        # Level 2: on 900 KB requests of Crusoe events zlib spends no more CPU than at level 1 (it finds longer
        # matches, so it emits fewer symbols) and sends 12% fewer bytes; ISA-L's level 1, which zlib's 1-2 map to,
        # is as small at a sixth of the CPU (bench/bench_splunk_hec.py gzip_levels, forwarder/compression.py).
        "gzip_level": Option("int", 2, "gzip level on zlib's scale: 1 fastest, 9 smallest", minimum=1, maximum=9),
        "batch_bytes": Option("int", 900_000, "most bytes of events per request, before compression", minimum=1024),
        "ack": Option("bool", False, "indexer acknowledgement: count events delivered only once Splunk has indexed them"),
        "ack_timeout": Option("duration", 120.0, "send a request again when it is not acknowledged within this time", minimum=0.01),
        "ack_poll": Option("duration", 2.0, "longest wait between acknowledgement polls", minimum=0.001),
        "ack_resends": Option("int", 3, "resends of an unacknowledged request before the delivery fails", minimum=0, maximum=100),
        "allow_insecure_http": Option("bool", False, "accept plain http:// to a non-loopback host (the token then travels in clear)"),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any], where: str) -> None:
        """The token never crosses a network in clear unless the user opts in."""
        require_tls(options["url"], options["allow_insecure_http"], f"{where}.url")

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        opts = self.options
        self.bases = [u.rstrip("/") for u in opts["url"]]
        self.index: str | None = opts["index"]
        self.host: str | None = opts["host"]
        self.source: str | None = opts["source"]
        self.overrides: dict[str, str] = opts["sourcetypes"]
        self.gzip: bool = opts["gzip"]
        self.gzip_level: int = opts["gzip_level"]
        self.batch_bytes: int = opts["batch_bytes"]
        self.ack: bool = opts["ack"]
        self.ack_timeout: float = opts["ack_timeout"]
        self.ack_poll: float = opts["ack_poll"]
        self.ack_resends: int = opts["ack_resends"]
        self.channel = str(uuid.uuid4())
        self.client = HttpClient(f"sink {self.name}", config.http)
        self.client.session.headers["Authorization"] = f"Splunk {opts['token'].reveal()}"
        self._next = 0
        self._sourcetypes: dict[str, str] = {}
        self._metadata: dict[str, bytes] = {}
        self._warned_ack = False
        self._poster = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hec-{self.name}")

    # -- encoding ----------------------------------------------------------
    def sourcetype(self, event: AuditEvent) -> str:
        """The configured override for the event's dataset or vendor, else the standard name."""
        dataset = event.dataset
        found = self._sourcetypes.get(dataset)
        if found is None:
            found = self.overrides.get(dataset) or self.overrides.get(event.vendor) or sourcetype_for(event)
            self._sourcetypes[dataset] = found
        return found

    def metadata(self, event: AuditEvent) -> bytes:
        """The envelope's metadata bytes for the event's dataset, computed once per dataset."""
        dataset = event.dataset
        found = self._metadata.get(dataset)
        if found is None:
            found = hec_metadata(index=self.index, host=self.host, source=self.source, sourcetype=self.sourcetype(event))
            self._metadata[dataset] = found
        return found

    def encode(self, events: list[AuditEvent]) -> list[bytes]:
        """One compact JSON envelope per event: the bytes of ``jsoncodec.dumps(hec_event(...))``."""
        metadata = self.metadata
        return [hec_line(e, metadata(e)) for e in events]

    def _chunks(self, events: list[AuditEvent]) -> Iterator[tuple[list[AuditEvent], list[bytes]]]:
        """Encode as needed and cut requests under ``batch_bytes`` (one event may exceed it alone)."""
        chunk_events: list[AuditEvent] = []
        chunk_lines: list[bytes] = []
        size = 0
        for start in range(0, len(events), _ENCODE_STEP):
            part = events[start:start + _ENCODE_STEP]
            for event, line in zip(part, self.encode(part)):
                if size and size + len(line) + 1 > self.batch_bytes:
                    yield chunk_events, chunk_lines
                    chunk_events, chunk_lines, size = [], [], 0
                chunk_events.append(event)
                chunk_lines.append(line)
                size += len(line) + 1
        if chunk_events:
            yield chunk_events, chunk_lines

    def _body(self, lines: list[bytes]) -> bytes:
        body = b"\n".join(lines)
        return compression.gzip(body, self.gzip_level) if self.gzip else body

    # -- delivery ----------------------------------------------------------
    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        """Deliver ``events``; return the ones Splunk refused as bad data.

        While one request is on the wire (in the poster thread), the next one is
        encoded and compressed here; requests still go out one at a time, in order.
        """
        rejected: list[Rejected] = []
        sent: list[_Sent] = []
        in_flight: Future[list[_Sent]] | None = None
        for chunk_events, chunk_lines in self._chunks(events):
            body = self._body(chunk_lines)
            if in_flight is not None:
                sent.extend(in_flight.result())
            in_flight = self._poster.submit(self._post, chunk_events, chunk_lines, rejected, body)
        if in_flight is not None:
            sent.extend(in_flight.result())
        if self.ack:
            self._await_all(sent, rejected)
        return rejected

    def _post(self, events: list[AuditEvent], lines: list[bytes], rejected: list[Rejected], body: bytes | None = None) -> list[_Sent]:
        """Post until Splunk took every event not rejected; the requests that wait for an ack."""
        sent: list[_Sent] = []
        todo = deque([(events, lines)])
        while todo:
            evs, lns = todo.popleft()
            resp = self._request_events(body if body is not None else self._body(lns))
            body = None
            if resp.status_code == 413:
                if len(evs) == 1:
                    rejected.append(Rejected(evs[0], "splunk hec: HTTP 413: the event alone is larger than Splunk's max_content_length"))
                    continue
                half = len(evs) // 2
                todo.extendleft([(evs[half:], lns[half:]), (evs[:half], lns[:half])])
                continue
            code, answer = _parse(resp)
            if resp.status_code == 200 and code not in ACCEPTED_CODES:
                raise SinkError(
                    f"sink {self.name}: {safe_url(resp.url)} answered HTTP 200 without HEC's success answer; is this a Splunk HEC URL?"
                )
            if resp.status_code == 200:
                ack_id = answer.get("ackId")
                if self.ack:
                    if not isinstance(ack_id, int):
                        raise SinkError(f"sink {self.name}: ack = true but Splunk answered without an ackId; is indexer acknowledgement on for this token?")
                    sent.append(_Sent(resp.url[: -len(EVENT_PATH)], ack_id, evs, lns))
                elif ack_id is not None and not self._warned_ack:
                    self._warned_ack = True
                    log.warning("sink %s: the HEC token has indexer acknowledgement on; set ack = true to use it", self.name)
                if code in SLOW_DOWN_CODES:
                    log.info("sink %s: Splunk says %s; slowing down", self.name, MEANING[code])
                    self.client.sleep(self.config.http.backoff_base)
                continue
            if resp.status_code in (401, 403):
                raise self._auth_error(resp, code)
            k = answer.get("invalid-event-number")
            if resp.status_code == 400 and code in PER_EVENT_CODES and isinstance(k, int) and 0 <= k < len(evs):
                rejected.append(Rejected(evs[k], f"splunk hec code {code}: {answer.get('text') or MEANING[code]}"))
                # Events before k are indexed, but with acks on they are unconfirmed: no ackId comes back.
                first = 0 if self.ack else k
                rest = (evs[first:k] + evs[k + 1:], lns[first:k] + lns[k + 1:])
                if rest[0]:
                    todo.appendleft(rest)
                continue
            raise SinkError(f"sink {self.name}: Splunk refused the request ({self._describe(resp, code)})")
        return sent

    def _request_events(self, body: bytes) -> requests.Response:
        """One POST of concatenated envelopes, retried and failed over by the HTTP layer."""
        headers = {"Content-Type": "application/json", "X-Splunk-Request-Channel": self.channel}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        i = self._next
        self._next = (i + 1) % len(self.bases)
        urls = [base + EVENT_PATH for base in self.bases[i:] + self.bases[:i]]
        return self.client.request("POST", urls, ok=_HANDLED, data=body, headers=headers)

    def _describe(self, resp: requests.Response, code: int | None) -> str:
        where = f"{resp.request.method} {safe_url(resp.url)} returned HTTP {resp.status_code}"
        if code is None:
            return where
        return f"{where}: HEC code {code}: {MEANING.get(code, 'undocumented code')}"

    def _auth_error(self, resp: requests.Response, code: int | None) -> AuthError:
        meaning = MEANING.get(code, "credentials refused") if code is not None else "credentials refused"
        detail = f"HEC code {code}: {meaning}" if code is not None else meaning
        return AuthError(self.client.what, resp.request.method or "POST", safe_url(resp.url), resp.status_code, detail)

    # -- indexer acknowledgement -------------------------------------------
    def _await_all(self, sent: list[_Sent], rejected: list[Rejected]) -> None:
        """Wait for every ackId; send unacknowledged requests again, up to ``ack_resends`` times."""
        for attempt in range(self.ack_resends + 1):
            missing = self._await_acks(sent)
            if not missing:
                return
            count = sum(len(s.events) for s in missing)
            if attempt == self.ack_resends:
                raise SinkError(
                    f"sink {self.name}: {count} events not acknowledged by Splunk after "
                    f"{self.ack_resends + 1} attempts of {self.ack_timeout:g}s each"
                )
            log.warning("sink %s: %d events not acknowledged within %gs; sending them again", self.name, count, self.ack_timeout)
            sent = [again for s in missing for again in self._post(s.events, s.lines, rejected)]

    def _await_acks(self, sent: list[_Sent]) -> list[_Sent]:
        """Poll until every ackId read true or ``ack_timeout`` passed; return the unacknowledged."""
        waiting = {(s.base, s.ack_id): s for s in sent}
        deadline = time.monotonic() + self.ack_timeout
        given_up: list[_Sent] = []
        delay = min(0.05, self.ack_poll)
        while waiting:
            for base in sorted({b for b, _ in waiting}):
                ids = [i for b, i in waiting if b == base]
                try:
                    done = self._poll(base, ids)
                except HttpError as exc:
                    if isinstance(exc, AuthError):
                        raise
                    # That indexer is gone: its acks will never come; send those events elsewhere.
                    log.warning("sink %s: cannot poll acks: %s", self.name, exc)
                    given_up.extend(waiting.pop((base, i)) for i in ids)
                    continue
                for i in done:
                    waiting.pop((base, i), None)
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            self.client.sleep(min(delay, left))
            delay = min(delay * 2, self.ack_poll)
        return given_up + list(waiting.values())

    def _poll(self, base: str, ids: list[int]) -> list[int]:
        """The ids among ``ids`` that Splunk reports indexed (each reads true only once)."""
        headers = {"Content-Type": "application/json", "X-Splunk-Request-Channel": self.channel}
        resp = self.client.request("POST", base + ACK_PATH, ok=_HANDLED, data=jsoncodec.dumps({"acks": ids}), headers=headers)
        code, answer = _parse(resp)
        if resp.status_code in (401, 403):
            raise self._auth_error(resp, code)
        if resp.status_code != 200:
            raise SinkError(f"sink {self.name}: acknowledgement poll refused ({self._describe(resp, code)})")
        acks = answer.get("acks")
        if not isinstance(acks, dict):
            raise SinkError(f"sink {self.name}: {safe_url(resp.url)} answered an ack poll without an 'acks' object")
        return [i for i in ids if acks.get(str(i)) is True]

    # -- check -------------------------------------------------------------
    def check(self) -> str:
        """Health of every URL, then a token probe and an ack probe that index nothing."""
        token_ack = False
        for base in self.bases:
            resp = self.client.request("GET", base + HEALTH_PATH, ok=(200, 503), retry_status=())
            code, _ = _parse(resp)
            if code != 17:
                raise SinkError(f"sink {self.name}: HEC is not healthy ({self._describe(resp, code)})")
            # An empty body is refused as "no data" only after the token (and channel) passed.
            probe = {"X-Splunk-Request-Channel": str(uuid.uuid4())}
            resp = self.client.request("POST", base + EVENT_PATH, ok=_HANDLED, data=b"", headers=probe)
            code, _ = _parse(resp)
            if resp.status_code in (401, 403):
                raise self._auth_error(resp, code)
            if code != 5:
                raise SinkError(f"sink {self.name}: unexpected answer to the token probe ({self._describe(resp, code)})")
            # Polling an id on a fresh channel reads nothing real; code 14 means the token has no acks.
            resp = self.client.request("POST", base + ACK_PATH, ok=_HANDLED, data=b'{"acks":[0]}', headers=probe)
            code, _ = _parse(resp)
            token_ack = resp.status_code == 200
            if not token_ack and code != 14:
                raise SinkError(f"sink {self.name}: unexpected answer to the ack probe ({self._describe(resp, code)})")
            if self.ack and not token_ack:
                raise SinkError(f"sink {self.name}: {safe_url(base)}: ack = true but HEC code 14: {MEANING[14]}")
        note = "; the token has indexer acknowledgement on: set ack = true to use it" if token_ack and not self.ack else ""
        renames = rename_stanzas(self.overrides)
        if renames:
            note += ("; overridden sourcetypes get the add-on's CIM knowledge only with these stanzas in "
                     "TA_siem_forwarder/local/props.conf on the search heads: " + " ".join(renames.split()))
        return f"{len(self.bases)} HEC endpoint(s) healthy, token accepted, ack {'on' if self.ack else 'off'}{note}"

    def close(self) -> None:
        """Stop the poster thread and release pooled connections."""
        self._poster.shutdown(wait=True)
        self.client.close()


def _parse(resp: requests.Response) -> tuple[int | None, dict[str, Any]]:
    """HEC's ``code`` (None when absent) and the JSON answer ({} when the body is not a JSON object)."""
    try:
        answer = jsoncodec.loads(resp.content)
    except (ValueError, requests.exceptions.RequestException):
        return None, {}
    if not isinstance(answer, dict):
        return None, {}
    code = answer.get("code")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), answer
