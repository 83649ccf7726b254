"""Simulator framework: a threaded HTTP server on 127.0.0.1 with routing and fault knobs.

A vendor simulator subclasses ``Simulator``, registers routes in ``setup`` and
generates its records from ``self.seed`` so every run serves the same data.
``Faults`` are applied before a request reaches its route:

- ``latency``: seconds added to every response;
- ``error_rate``: share of requests answered 503;
- ``throttle_rate``: share answered 429 with ``Retry-After: <retry_after>``;
- ``truncate_rate``: share whose body is cut in half (Content-Length stays whole);
- ``token_ttl``: lifetime of issued bearer tokens (see ``TokenBook``).

Faults use their own seeded RNG, so a given sequence of requests meets the same faults.

Pass an ``ssl.SSLContext`` as ``tls`` to serve HTTPS (for testing certificate handling).

A simulator checks requests against the vendor's documented rules with its own
code: it imports nothing from ``forwarder.sources`` or ``forwarder.auth`` (a test
enforces it). The time and base64url helpers below serve that: vendor time
formats are read here with the stdlib, not by the forwarder's lenient parser.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import random
import re
import secrets as _secrets
import sys
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from forwarder import jsoncodec


@dataclass
class Faults:
    """Fault knobs (all off by default)."""

    latency: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    truncate_rate: float = 0.0
    token_ttl: float = 3600.0
    seed: int = 1


@dataclass
class Request:
    """A parsed request as a route handler sees it."""

    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: str = "127.0.0.1"

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON (ValueError if it is not)."""
        return jsoncodec.loads(self.body)


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> "Response":
        """A JSON response."""
        return cls(status, jsoncodec.dumps(obj), {"Content-Type": "application/json", **(headers or {})})


Handler = Callable[..., Response]


class TokenBook:
    """Bearer tokens issued by a simulator, with expiry."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def issue(self, subject: str) -> str:
        """A new token for ``subject``."""
        token = _secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (subject, time.monotonic() + self.ttl)
            self.issued += 1
        return token

    def subject(self, authorization: str | None) -> str | None:
        """The subject of a valid ``Bearer`` header, or None if missing/unknown/expired."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self._lock:
            entry = self._tokens.get(authorization[7:].strip())
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def expire_all(self) -> None:
        """Make every issued token expired (test knob)."""
        with self._lock:
            self._tokens = {t: (s, 0.0) for t, (s, _) in self._tokens.items()}


class Simulator:
    """Base class: routing, faults, lifecycle. Subclasses add routes in ``setup``."""

    VENDOR: ClassVar[str] = ""

    def __init__(self, *, port: int = 0, seed: int = 42, faults: Faults | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.ssl_context = tls
        self.seed = seed
        self.faults = faults or Faults()
        self.tokens = TokenBook(self.faults.token_ttl)
        self.requests = 0
        self.log: deque[tuple[str, str, int]] = deque(maxlen=10_000)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._fault_rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.setup()

    # -- to override -------------------------------------------------------
    def setup(self) -> None:
        """Register routes with ``self.route``."""

    def demo_source(self, events: int) -> tuple[dict[str, Any], dict[str, str]]:
        """A ``[[source]]`` table pointing at this simulator, and the env vars its secrets need."""
        raise NotImplementedError

    # -- routing -----------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Call ``handler(request, **groups)`` for ``method`` on paths matching ``pattern``."""
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def dispatch(self, request: Request) -> Response:
        """Faults first, then the matching route; 404/405 otherwise."""
        with self._lock:
            self.requests += 1
            roll = self._fault_rng.random()
        f = self.faults
        if f.latency:
            time.sleep(f.latency)
        if roll < f.throttle_rate:
            return Response.json({"error": "too many requests"}, 429, {"Retry-After": _num(f.retry_after)})
        if roll < f.throttle_rate + f.error_rate:
            return Response.json({"error": "service unavailable"}, 503)
        allowed = False
        for method, pattern, handler in self._routes:
            m = pattern.match(request.path)
            if m:
                allowed = True
                if method == request.method:
                    resp = handler(request, **{k: unquote(v) for k, v in m.groupdict().items()})
                    if roll >= 1 - f.truncate_rate and resp.body:
                        resp.headers["X-Truncated"] = str(len(resp.body))
                    return resp
        if allowed:
            return Response.json({"error": "method not allowed"}, 405)
        return Response.json({"error": "not found", "path": request.path}, 404)

    # -- lifecycle ---------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (``https://`` when serving TLS)."""
        assert self._server is not None, "simulator not started"
        return f"{'https' if self.ssl_context is not None else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "Simulator":
        """Serve in a background thread."""
        sim = self

        class _Handler(_RequestHandler):
            simulator = sim

        self._server = _Server(("127.0.0.1", self.port), _Handler)
        if self.ssl_context is not None:
            self._server.socket = self.ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"sim-{self.VENDOR}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the foreground (``siem-forwarder simulate``)."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def rng(seed: int, *keys: object) -> random.Random:
    """A deterministic RNG for (seed, keys): the same keys always give the same data."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


UTC = dt.timezone.utc
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))", re.ASCII)
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def parse_rfc3339(text: object, *, utc_only: bool = False) -> dt.datetime:
    """An RFC 3339 date-time as an aware UTC datetime; ValueError for anything else.

    Strict on purpose: epoch numbers, date-only or zone-less text are refused, as a
    vendor would. ``utc_only`` also refuses numeric offsets (``Z`` only).
    """
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None or (utc_only and m.group(8) is None):
        raise ValueError(f"not an RFC 3339 date-time{' in UTC (Z)' if utc_only else ''}: {text!r}")
    year, month, day, hour, minute, second, frac, _, sign, off_h, off_m = m.groups()
    offset = dt.timedelta(0)
    if sign:
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        moment = dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((frac or "0").ljust(6, "0")[:6]), tzinfo=dt.timezone(offset),
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not an RFC 3339 date-time: {text!r} ({exc})") from None


def format_rfc3339(moment: dt.datetime, digits: int = 0) -> str:
    """``moment`` (aware) in UTC as ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` with ``digits`` (0-6) fraction digits."""
    moment = moment.astimezone(UTC)
    fraction = "." + f"{moment.microsecond:06d}"[:digits] if digits else ""
    return f"{moment:%Y}".zfill(4) + f"{moment:-%m-%dT%H:%M:%S}" + fraction + "Z"  # %Y alone drops leading zeros


def b64url_decode(text: str) -> bytes:
    """Unpadded URL-safe base64 (RFC 4648 §5) to bytes; ValueError on padding or any other alphabet."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(f"not unpadded base64url: {exc}") from None


def b64url_encode(data: bytes) -> str:
    """Bytes as unpadded URL-safe base64."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class _Server(ThreadingHTTPServer):
    """A client hanging up mid-answer is normal for a vendor API: no traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per request on a keep-alive connection).
    disable_nagle_algorithm = True
    simulator: ClassVar[Simulator]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        return

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            raw_query=parts.query,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=self.client_address[0],
        )
        try:
            resp = self.simulator.dispatch(request)
        except Exception as exc:  # a simulator bug must show up as a 500, not a hung client
            resp = Response.json({"error": "simulator error", "detail": f"{type(exc).__name__}: {exc}"}, 500)
        self.simulator.log.append((request.method, request.path, resp.status))
        truncated = resp.headers.pop("X-Truncated", None)
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        if truncated:
            self.send_header("Connection", "close")
        self.end_headers()
        if truncated:
            self.wfile.write(resp.body[: len(resp.body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif resp.body:
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle
