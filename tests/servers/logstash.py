"""A strict stand-in for Logstash's ``http`` input (logstash-input-http 4.x) on 127.0.0.1.

What it models, in the order the real input applies it:

- "blocked" back-pressure: while any worker has been stuck pushing into a full
  pipeline queue for longer than ``block_threshold`` (10 s in Logstash), every
  new request gets ``429`` with an empty body and the connection is closed;
- ``Content-Encoding: gzip``/``deflate`` decompression (a corrupt body is a
  ``400`` with the error text; unknown encodings pass through undecoded);
- ``max_content_length`` on the decompressed body: ``413``, empty body, connection closed;
- ``threads`` workers plus ``max_pending_requests`` waiting requests; beyond that ``429``;
- HTTP Basic auth checked as the exact ``Authorization`` header: missing → ``401``
  with ``WWW-Authenticate: Basic realm="Logstash HTTP Input"``, wrong → ``401``;
- codec choice by MIME type without parameters (``additional_codecs``, else
  ``codec``) and the codecs ``plain`` (one event, even for an empty body),
  ``json`` (object → one event, array → one per element, anything else → one
  ``_jsonparsefailure`` event; still ``200``) and ``json_lines`` (one event per
  line, blank lines skipped, an unterminated last line flushed, bad lines →
  ``_jsonparsefailure``); the body is decoded with the ``charset`` of the
  Content-Type (UTF-8 by default, invalid bytes replaced);
- event decoration: ``@version``, ``@timestamp`` when missing, the remote host
  and request headers in their target fields, and in ECS mode (``v8``, the
  default of Logstash 8) the ``http.*``/``url.*``/``user_agent.*`` fields and
  ``event.original`` from the ``plain``/``json`` codecs;
- a bounded pipeline queue (``queue_capacity`` events): a request blocks while
  the queue is full until ``consume`` frees space;
- ``response_code`` (200, 201, 202 or 204; 204 has no body) with body ``ok``.

Records: ``events`` (decoded and decorated), ``bodies`` (decompressed request
bodies), ``statuses``; ``record=False`` keeps only the ``accepted`` count.

Test knobs: ``fail_next(count, status)`` answers the next requests with an
empty-bodied error (e.g. 500 as a failing handler does, or 429).

TLS: pass an ``ssl.SSLContext`` as ``tls`` (the URL becomes ``https://``).

Not modelled: client certificates (``ssl_verify_mode``), ``Expect: 100-continue`` (Netty may
answer 413/429 before reading the body; here the body is always read first),
answering mid-upload, codec options (``target``, ``delimiter``, ``charset``
overrides), per-connection codec state, ``decode_size_limit_bytes``, what the
pipeline does with events after the queue (filters, outputs).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import ssl
import threading
import time
import zlib
from typing import Any

from forwarder import jsoncodec
from forwarder.simulators.base import Request, Response, Simulator

_CHALLENGE = 'Basic realm="Logstash HTTP Input"'
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


class LogstashHttpInput(Simulator):
    """The http input and a bounded pipeline queue; decoded events land in ``events``."""

    VENDOR = "logstash"

    def __init__(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        codec: str = "plain",
        additional_codecs: dict[str, str] | None = None,
        ecs_compatibility: str = "v8",
        codec_ecs_compatibility: str | None = None,
        remote_host_target_field: str | None = None,
        request_headers_target_field: str | None = None,
        threads: int = 4,
        max_pending_requests: int = 200,
        max_content_length: int = 100 * 1024 * 1024,
        response_code: int = 200,
        queue_capacity: int | None = None,
        block_threshold: float = 10.0,
        tls: ssl.SSLContext | None = None,
        record: bool = True,
        port: int = 0,
    ) -> None:
        if response_code not in (200, 201, 202, 204):
            raise ValueError("response_code must be one of 200, 201, 202, 204")
        for name in [codec, *(additional_codecs or {}).values()]:
            if name not in _CODECS:
                raise ValueError(f"codec {name!r} is not modelled (known: {', '.join(sorted(_CODECS))})")
        self.auth_token = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user and password else None
        )
        self.codec = codec
        self.additional_codecs = {"application/json": "json"} if additional_codecs is None else dict(additional_codecs)
        self.ecs = ecs_compatibility != "disabled"
        self.codec_ecs = self.ecs if codec_ecs_compatibility is None else codec_ecs_compatibility != "disabled"
        self.host_field = remote_host_target_field or ("[host][ip]" if self.ecs else "host")
        self.headers_field = request_headers_target_field or (
            "[@metadata][input][http][request][headers]" if self.ecs else "headers"
        )
        self.threads = threads
        self.max_pending_requests = max_pending_requests
        self.max_content_length = max_content_length
        self.response_code = response_code
        self.queue_capacity = queue_capacity
        self.block_threshold = block_threshold
        self.record = record
        self.events: list[dict[str, Any]] = []
        self.accepted = 0
        self.consumed = 0
        self.statuses: list[int] = []
        self.bodies: list[tuple[str | None, str | None, bytes]] = []  # (content-type, content-encoding, decoded body)
        self._cond = threading.Condition()
        self._running = 0
        self._pending = 0
        self._executing: dict[int, float] = {}
        self._fail: list[int] = []
        self._closing = False
        super().__init__(port=port, tls=tls)

    def setup(self) -> None:
        """Every path and method reaches the input, like the real one."""
        for method in _METHODS:
            self.route(method, r"/.*", self._request)

    # -- knobs and views ---------------------------------------------------------
    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` and an empty body."""
        with self._cond:
            self._fail.extend([status] * count)

    def clear_failures(self) -> None:
        """Forget the answers queued by ``fail_next``."""
        with self._cond:
            self._fail.clear()

    def consume(self, count: int | None = None) -> None:
        """Let the pipeline take ``count`` queued events (all when None), freeing queue space."""
        with self._cond:
            queued = self.accepted - self.consumed
            self.consumed += queued if count is None else min(count, queued)
            self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (checked on every state change), or the timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    @property
    def blocked_workers(self) -> int:
        """Workers currently waiting for queue space."""
        with self._cond:
            return len(self._executing)

    def documents(self) -> list[dict[str, Any]]:
        """The events as an output sees them (without ``@metadata``)."""
        with self._cond:
            return [{k: v for k, v in e.items() if k != "@metadata"} for e in self.events]

    def stop(self) -> None:
        """Release blocked workers, then stop serving."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        super().stop()

    # -- the request path --------------------------------------------------------
    def _request(self, request: Request) -> Response:
        resp = self._answer(request)
        with self._cond:
            self.statuses.append(resp.status)
            self._cond.notify_all()
        return resp

    def _answer(self, request: Request) -> Response:
        now = time.monotonic()
        with self._cond:
            if self._fail:
                return Response(self._fail.pop(0))
            if any(now - started > self.block_threshold for started in self._executing.values()):
                return Response(429, headers={"Connection": "close"})
        body = request.body
        encoding = (request.header("content-encoding") or "").strip().lower()
        try:
            if encoding in ("gzip", "x-gzip"):
                body = gzip.decompress(body)
            elif encoding in ("deflate", "x-deflate"):
                body = _inflate(body)
        except (OSError, EOFError, zlib.error) as exc:
            return Response(400, f"decompression failed: {exc}".encode(), {"Content-Type": "text/plain"})
        if len(body) > self.max_content_length:
            return Response(413, headers={"Connection": "close"})
        with self._cond:
            if self._running >= self.threads:
                if self._pending >= self.max_pending_requests:
                    return Response(429)
                self._pending += 1
                while self._running >= self.threads and not self._closing:
                    self._cond.wait(0.05)
                self._pending -= 1
            self._running += 1
        try:
            return self._process(request, body)
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _process(self, request: Request, body: bytes) -> Response:
        token = request.header("authorization")
        if self.auth_token is not None:
            if token is None:
                return Response(401, headers={"WWW-Authenticate": _CHALLENGE})
            if token != self.auth_token:
                return Response(401)
        content_type = request.header("content-type") or ""
        mime, _, params = content_type.partition(";")
        codec = self.additional_codecs.get(mime.strip(), self.codec)
        text = body.decode(_charset(params), errors="replace")
        with self._cond:
            if self.record:
                self.bodies.append((request.header("content-type"), request.header("content-encoding"), body))
        headers = _format_headers(request, content_type)
        key = threading.get_ident()
        try:
            for event in _CODECS[codec](text, self.codec_ecs):
                self._decorate(event, headers, request.client)
                self._push(key, event)
        except _Closing:
            return Response(503)
        finally:
            with self._cond:
                self._executing.pop(key, None)
        if self.response_code == 204:
            return Response(204)
        return Response(self.response_code, b"ok", {"Content-Type": "text/plain"})

    def _decorate(self, event: dict[str, Any], headers: dict[str, str], client: str) -> None:
        event.setdefault("@version", "1")
        event.setdefault("@timestamp", dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        if self.ecs:
            host, _, port = headers.get("http_host", "").rpartition(":")
            for field, value in (
                ("[http][version]", headers.get("http_version")),
                ("[user_agent][original]", headers.get("http_user_agent")),
                ("[url][domain]", host or headers.get("http_host")),
                ("[url][port]", int(port) if port.isdigit() else None),
                ("[http][method]", headers.get("request_method")),
                ("[url][path]", headers.get("request_path")),
                ("[http][request][body][bytes]", headers.get("content_length")),
                ("[http][request][mime_type]", headers.get("content_type")),
            ):
                if value is not None:
                    set_field(event, field, value)
        set_field(event, self.headers_field, headers)
        set_field(event, self.host_field, client)

    def _push(self, key: int, event: dict[str, Any]) -> None:
        """Append to the pipeline queue, blocking (and counting as executing) while it is full."""
        with self._cond:
            while self.queue_capacity is not None and self.accepted - self.consumed >= self.queue_capacity:
                if self._closing:
                    raise _Closing
                self._executing.setdefault(key, time.monotonic())
                self._cond.notify_all()
                self._cond.wait(0.05)
            self.accepted += 1
            if self.record:
                self.events.append(event)
            self._cond.notify_all()


class _Closing(Exception):
    """The stub is stopping while a worker waits for queue space."""


def set_field(event: dict[str, Any], ref: str, value: Any) -> None:
    """Set a Logstash field reference (``[a][b]`` or ``a``) in a nested dict."""
    parts = ref.strip("[]").split("][") if ref.startswith("[") else [ref]
    node = event
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _inflate(body: bytes) -> bytes:
    """Netty accepts zlib-wrapped and raw deflate."""
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -zlib.MAX_WBITS)


def _charset(params: str) -> str:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _format_headers(request: Request, content_type: str) -> dict[str, str]:
    """Headers the way the input stores them: lower case, ``-`` → ``_``, no Authorization."""
    headers = {k.lower().replace("-", "_"): v for k, v in request.headers.items() if k.lower() != "authorization"}
    for src, dst in (("accept", "http_accept"), ("host", "http_host"), ("user_agent", "http_user_agent")):
        if src in headers:
            headers[dst] = headers.pop(src)
    headers["request_method"] = request.method
    headers["request_path"] = request.path + (f"?{request.raw_query}" if request.raw_query else "")
    headers["http_version"] = "HTTP/1.1"
    if content_type:
        headers["content_type"] = content_type
    return headers


def _failure(text: str) -> dict[str, Any]:
    return {"message": text, "tags": ["_jsonparsefailure"]}


def _from_json(text: str) -> list[dict[str, Any]]:
    """Logstash's Event.from_json: an object or an array of objects (ValueError otherwise)."""
    value = jsoncodec.loads(text)
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("JSON must be an object or an array of objects")
    return items


def _plain(text: str, ecs: bool) -> list[dict[str, Any]]:
    event: dict[str, Any] = {"message": text}
    if ecs:
        set_field(event, "[event][original]", text)
    return [event]


def _json(text: str, ecs: bool) -> list[dict[str, Any]]:
    if not text.strip():
        return []
    try:
        events = _from_json(text)
    except ValueError:
        return [_failure(text)]
    if ecs and len(events) == 1 and "original" not in events[0].get("event", {}):
        set_field(events[0], "[event][original]", text)
    return events


def _json_lines(text: str, ecs: bool) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            events.extend(_from_json(line))
        except ValueError:
            events.append(_failure(line))
    return events


_CODECS = {"plain": _plain, "json": _json, "json_lines": _json_lines}


def main() -> None:
    """Serve in the foreground (used by ``bench/bench_logstash.py``): prints the URL, then
    answers each ``count`` line on standard input with the number of accepted events; stops at EOF."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(description="strict local Logstash http input")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user")
    parser.add_argument("--password-env", help="environment variable holding the password")
    parser.add_argument("--no-record", action="store_true", help="keep only the count of accepted events")
    args = parser.parse_args()
    password = os.environ.get(args.password_env) if args.password_env else None
    server = LogstashHttpInput(user=args.user, password=password, codec="json_lines", additional_codecs={},
                               ecs_compatibility="disabled", record=not args.no_record, port=args.port)
    server.start()
    print(server.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(server.accepted, flush=True)
    server.stop()


if __name__ == "__main__":
    main()
