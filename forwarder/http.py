"""The one HTTP layer every source and sink uses.

It owns: sessions, timeouts, TLS verification (custom CA bundle, optional client
certificate), proxies (config or the standard environment variables), retries
with tenacity (exponential backoff with jitter, honouring ``Retry-After`` as
seconds or an HTTP date), a shared per-credential rate limiter (token bucket plus
blocks set by 429s and ``ratelimit-*`` headers), and turning failures into
``HttpError``/``AuthError`` lines with secrets redacted.

Redirects are never followed: an API call answered with a redirect fails with one
line naming both origins. requests would re-send custom headers (``X-Auth-Token``),
signed headers, token-request bodies and events to whatever host a server names;
no vendor API or target documented here redirects its API calls.

Never retried: 400, 401, 403, 404 and other 4xx except 408/429. A 401 is retried
once when the auth object can refresh its token (``auth.refresh()``).
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
import tenacity
import urllib3

from forwarder import __version__, jsoncodec, metrics
from forwarder.errors import AuthError, HttpError, SourceError
from forwarder.secrets import redact

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = f"siem-forwarder/{__version__}"

log = logging.getLogger("forwarder.http")

_warned_unverified: set[str] = set()
_warned_lock = threading.Lock()


@dataclass
class HttpSettings:
    """Network settings shared by sources and sinks (the ``[source.http]``/``[sink.http]`` tables)."""

    timeout: float = 30.0
    verify: bool = True
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    proxy: str | None = None
    retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_response_mb: int = 64

    @classmethod
    def from_config(cls, table: dict[str, Any]) -> "HttpSettings":
        """Build from an already validated config table."""
        return cls(**table)


_READ_CHUNK = 1 << 20  # response bodies are read a MiB at a time (requests' own default is 10 KiB)
_TOKEN_EPSILON = 1e-9
MIN_WAIT = 0.001  # seconds: a shorter sleep is below what clocks and schedulers honour


@dataclass(eq=False)
class Bucket:
    """The state of one token bucket: kept in memory by ``RateLimiter``, in a database row by a shared store."""

    tokens: float
    updated: float
    blocked_until: float = 0.0

    def take(self, now: float, per_minute: float | None, capacity: float) -> float:
        """Take one token at time ``now``: 0 when taken, else the seconds to wait before trying again.

        ``per_minute=None`` disables pacing but keeps the block.
        """
        wait = self.blocked_until - now
        if wait > 0:
            return max(wait, MIN_WAIT)
        if not per_minute:
            return 0.0
        self.tokens = min(capacity, self.tokens + (now - self.updated) * per_minute / 60.0)
        self.updated = now
        # A count within float rounding of a whole token is that token: otherwise the
        # remaining wait can fall below the clock's resolution and never elapse.
        if self.tokens >= 1 - _TOKEN_EPSILON:
            self.tokens = max(0.0, self.tokens - 1)
            return 0.0
        return max((1 - self.tokens) * 60.0 / per_minute, MIN_WAIT)

    def block(self, now: float, seconds: float, per_minute: float | None) -> None:
        """Stop every request for ``seconds`` from ``now`` (extends, never shortens)."""
        self.blocked_until = max(self.blocked_until, now + seconds)
        if per_minute:
            self.tokens = 0
            self.updated = now


class RateLimiter(Bucket):
    """Token bucket plus "blocked until" time, shared by everything using one credential.

    ``per_minute=None`` disables pacing but keeps the block (set by 429s and
    exhausted ``ratelimit-*`` headers). ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        per_minute: float | None = None,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self.capacity = burst if burst is not None else (per_minute or 0)
        self.clock = clock
        self.sleep = sleep
        super().__init__(self.capacity, clock())
        self.lock = threading.Lock()

    def acquire(self) -> None:
        """Wait until a request may be sent, then take one token."""
        while True:
            with self.lock:
                wait = self.take(self.clock(), self.per_minute, self.capacity)
            if not wait:
                return
            self.sleep(wait)

    def block_for(self, seconds: float) -> None:
        """Stop every request through this limiter for ``seconds`` (extends, never shortens)."""
        with self.lock:
            self.block(self.clock(), seconds, self.per_minute)


class Limiter(Protocol):
    """What an HTTP client needs from a rate limiter."""

    def acquire(self) -> None: ...

    def block_for(self, seconds: float) -> None: ...


_limiters: dict[str, Limiter] = {}
_limiters_lock = threading.Lock()
_limiter_factory: Callable[[str, float | None, float | None], Limiter] | None = None


def shared_limiter(key: str, per_minute: float | None = None, burst: float | None = None) -> Limiter:
    """The limiter for ``key`` (e.g. a client id), created on first use and shared process-wide
    (and across replicas when ``share_limiters_through`` installed a shared store's limiters)."""
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            make = _limiter_factory or (lambda _key, rate, size: RateLimiter(rate, size))
            limiter = _limiters[key] = make(key, per_minute, burst)
        return limiter


def share_limiters_through(factory: Callable[[str, float | None, float | None], Limiter] | None) -> None:
    """Create shared limiters with ``factory`` (key, per minute, burst) from now on; None: in memory."""
    global _limiter_factory
    with _limiters_lock:
        _limiter_factory = factory
        _limiters.clear()


def forget_shared_limiters() -> None:
    """Drop every shared limiter (a reloaded config, or a test, starts from full buckets)."""
    global _limiter_factory
    with _limiters_lock:
        _limiters.clear()
        _limiter_factory = None


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def safe_url(url: str) -> str:
    """The URL without query string or user info, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = _port(parts)
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (default port made explicit): what a credential is bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = _port(parts) or {"http": 80, "https": 443}.get(scheme)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def redirect_error(what: str, method: str, url: str, status: int, location: str | None) -> HttpError:
    """The one line for a refused redirect: both origins, and why nothing was sent there."""
    try:
        target = urljoin(url, location or "")
        urlsplit(target).port  # noqa: B018 -- raises ValueError for a port that is not one
        where = f"{origin(target)} ({safe_url(target)})"
    except ValueError:
        where = "an unparsable location"
    detail = (
        f"redirect from {origin(url)} to {where} refused: "
        "API calls never follow redirects, so no credential or payload leaves the configured host"
    )
    return HttpError(what, method, safe_url(url), status, redact(detail))


_REDACT_SPAN = 64 * 1024  # bytes of a body redacted before an excerpt is cut from it
_BAD_SEGMENTS = frozenset({"", ".", ".."})


def id_segment(value: Any, what: str, shape: re.Pattern[str], described: str) -> str:
    """A vendor-supplied id as one quoted URL path segment, once it has the shape the vendor documents.

    Ids are data: ``..`` or ``a/b`` must never move a request to another path. A value of
    another shape is a ``SourceError`` naming ``what`` (the value is shown only in short).
    """
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or text in _BAD_SEGMENTS or not shape.fullmatch(text):
        shown = repr(value)[:40] + ("..." if len(repr(value)) > 40 else "")
        raise SourceError(f"{what} {shown} is not {described}; refused (ids are never used as paths)")
    return quote(text, safe="")


def warn_unverified(where: str, settings: "HttpSettings") -> None:
    """One warning per source or sink and process when TLS verification is off (urllib3's per-request ones are muted)."""
    if settings.verify:
        return
    # urllib3 would warn on every request; this line replaces those (set at run time, not import time,
    # so a caller's warnings.catch_warnings around the import cannot undo it).
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    with _warned_lock:
        if where in _warned_unverified:
            return
        _warned_unverified.add(where)
    log.warning("%s: verify = false: TLS certificates are not checked, so credentials can reach an impostor", where)


def body_excerpt(resp: requests.Response, limit: int = 300) -> str:
    """A short, single-line, redacted excerpt of a response body.

    Redacted before it is cut: a cut through a secret would leave a piece no redaction recognises.
    """
    try:
        text = resp.content[:_REDACT_SPAN].decode("utf-8", "replace")
    except Exception:  # a broken stream: there is nothing useful to show
        return ""
    return redact(" ".join(text.split()))[:limit]


def backoff_delay(settings: HttpSettings, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): exponential, capped, jittered."""
    backoff = min(settings.backoff_max, settings.backoff_base * (2 ** (attempt - 1)))
    return random.uniform(backoff / 2, backoff)


class _Retryable(Exception):
    """Internal: a response that should be retried."""

    def __init__(self, resp: requests.Response) -> None:
        super().__init__(resp.status_code)
        self.resp = resp


class HttpClient:
    """A requests session with the forwarder's policies. One per source or sink instance.

    ``what`` names the remote side in error lines (``"crusoe"``, ``"splunk hec"``).
    """

    def __init__(
        self,
        what: str,
        settings: HttpSettings | None = None,
        *,
        auth: requests.auth.AuthBase | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        quota_window: float | None = None,
    ) -> None:
        self.what = what
        self.settings = settings or HttpSettings()
        self.auth = auth
        self.limiter = limiter
        self.sleep = sleep
        # The vendor's rate-limit window: a 429 that says nothing of when to retry waits at least this long.
        self.quota_window = quota_window
        s = self.session = requests.Session()
        s.headers["User-Agent"] = USER_AGENT
        s.verify = self.settings.ca_bundle or self.settings.verify
        if self.settings.client_cert:
            s.cert = (
                (self.settings.client_cert, self.settings.client_key)
                if self.settings.client_key
                else self.settings.client_cert
            )
        if self.settings.proxy:
            s.proxies = {"http": self.settings.proxy, "https": self.settings.proxy}

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    def request(
        self,
        method: str,
        url: str | Sequence[str],
        *,
        ok: Iterable[int] = (200,),
        retry_status: Iterable[int] = RETRYABLE_STATUS,
        auth: requests.auth.AuthBase | None | bool = True,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with retries; return the response if its status is in ``ok``.

        ``idempotent=False`` (a destructive read) retries only what surely never reached
        the server (a refused or timed-out connect) and retryable statuses; a timeout or
        a reset after sending is raised at once, because a retry could silently skip what
        the lost answer carried.

        ``auth=False`` sends without the client's auth (e.g. a pre-signed download URL).
        ``url`` may be a list of equivalent URLs (several nodes of one service): each
        attempt goes to the next one, so a retry after a 5xx or a connection error fails over.
        Raises ``AuthError`` for 401/403, ``HttpError`` for anything else not in ``ok``.
        """
        urls = [url] if isinstance(url, str) else list(url)
        url = urls[0]
        tries = 0
        ok = frozenset(ok)
        retry_status = frozenset(retry_status) - ok
        use_auth = self.auth if auth is True else (None if auth is False else auth)
        streamed = kwargs.pop("stream", False)  # else the body is read here, within max_response_mb
        kwargs.setdefault("timeout", self.settings.timeout)
        # Per request, or requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override the configured ca_bundle.
        kwargs.setdefault("verify", self.session.verify)
        if self.session.proxies:  # same reason: HTTP(S)_PROXY would otherwise beat the configured proxy
            kwargs.setdefault("proxies", self.session.proxies)
        refreshed = False

        def attempt() -> requests.Response:
            nonlocal refreshed, url, tries
            while True:  # a loop, not a recursive call: a closure naming itself is a reference cycle that
                # would keep this request's kwargs (its body) alive until the cyclic collector ran
                url = urls[tries % len(urls)]
                tries += 1
                if self.limiter is not None:
                    began = time.monotonic()
                    self.limiter.acquire()
                    metrics.rate_limit_waited(self.what, time.monotonic() - began)
                try:
                    resp = self.session.request(method, url, auth=use_auth, allow_redirects=False, stream=True, **kwargs)
                except requests.exceptions.RequestException as exc:
                    metrics.http_response(self.what, None)
                    if isinstance(exc, requests.exceptions.SSLError):
                        raise HttpError(self.what, method, safe_url(url), None, f"TLS failure: {_reason(exc)}") from None
                    raise
                self._note_rate_headers(resp)
                status = resp.status_code
                metrics.http_response(self.what, status)
                if resp.is_redirect:
                    resp.close()
                    raise redirect_error(self.what, method, url, status, resp.headers.get("Location"))
                if not streamed:
                    self._read_body(method, url, resp)
                if status in ok:
                    return resp
                if status == 401 and not refreshed and hasattr(use_auth, "refresh"):
                    refreshed = True
                    use_auth.refresh()  # type: ignore[union-attr]
                    continue  # once more with the fresh credentials (not a retry)
                if status in retry_status:
                    raise _Retryable(resp)
                raise self._error(method, url, resp)

        transient = (_Retryable, requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError)

        def retryable(exc: BaseException) -> bool:
            if len(urls) == 1 and _unresolved(exc):
                return False  # a name that does not resolve is a config error or an outage: waiting rarely helps
            return isinstance(exc, transient) if idempotent else isinstance(exc, _Retryable) or _never_sent(exc)

        retry = tenacity.retry_if_exception(retryable)
        retryer = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.settings.retries + 1)),
            retry=retry,
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retryer(attempt)
        except _Retryable as exc:
            raise self._error(method, url, exc.resp) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if not idempotent and not _never_sent(exc):
                detail = f"answer lost after the request was sent (not retried: the read is destructive): {_reason(exc)}"
            elif _unresolved(exc):
                detail = f"cannot resolve host {urlsplit(url).hostname!r} (check the URL and DNS)"
            else:
                detail = f"unreachable after {tries} attempts: {_reason(exc)}"
            raise HttpError(self.what, method, safe_url(url), None, detail) from None
        except requests.exceptions.RequestException as exc:
            raise HttpError(self.what, method, safe_url(url), None, _reason(exc)) from None
        finally:
            # tenacity keeps the last round's actions, bound methods of the retryer, in the retryer's
            # own state: a reference cycle per request, left to the cyclic collector. Cleared here,
            # a request's objects are all freed when it returns.
            retryer.iter_state.reset()

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET and decode a JSON body (``SourceError`` if it is not JSON)."""
        return response_json(self.request("GET", url, **kwargs), self.what)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with full jitter; the server's hint wins if longer.

        The hint is ``Retry-After`` or, on a 429, the rate-limit reset time
        (``ratelimit-reset`` / ``X-RateLimit-Reset``: seconds until the window resets),
        else the client's ``quota_window``: a short backoff inside the vendor's window only
        earns more 429s (e.g. when another consumer shares the credential's quota).
        """
        metrics.http_retry(self.what)
        wait = backoff_delay(self.settings, state.attempt_number)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable):
            resp = exc.resp
            hinted = retry_after_seconds(resp.headers.get("Retry-After"))
            if hinted is None and resp.status_code == 429:
                hinted = _reset_seconds(resp)
                if hinted is None:
                    hinted = self.quota_window
            if hinted is not None:
                wait = max(wait, hinted)
            if self.limiter is not None and resp.status_code == 429:
                self.limiter.block_for(wait)
                return 0.0  # the limiter does the waiting, for every user of the credential
        return wait

    def _note_rate_headers(self, resp: requests.Response) -> None:
        """An exhausted rate-limit window (remaining 0 + reset) blocks the limiter until it resets."""
        if self.limiter is None:
            return
        for family in ("ratelimit", "x-ratelimit"):
            remaining = resp.headers.get(f"{family}-remaining")
            if remaining is None:
                continue
            try:
                exhausted = float(remaining) <= 0
            except ValueError:
                return
            reset = _reset_seconds(resp)
            if exhausted and reset is not None:
                self.limiter.block_for(reset)
            return

    def _read_body(self, method: str, url: str, resp: requests.Response) -> None:
        """Read the body into ``resp`` (``.content`` and ``.json()`` then work as usual), or raise
        ``HttpError`` once it passes ``max_response_mb``: requests would buffer a body that never
        ends, or a small gzip that inflates to gigabytes, until the process is killed for memory."""
        limit = self.settings.max_response_mb << 20
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(_READ_CHUNK):  # decompressed, so the limit also stops gzip bombs
            size += len(chunk)
            if size > limit:
                resp.close()
                raise HttpError(self.what, method, safe_url(url), None, f"HTTP {resp.status_code} with a body larger than "
                                f"{self.settings.max_response_mb} MiB (http.max_response_mb); not read further")
            chunks.append(chunk)
        resp._content = b"".join(chunks)  # what requests itself keeps after reading a body

    def _error(self, method: str, url: str, resp: requests.Response) -> HttpError:
        cls = AuthError if resp.status_code in (401, 403) else HttpError
        return cls(self.what, method, safe_url(url), resp.status_code, body_excerpt(resp))


def response_json(resp: requests.Response, what: str) -> Any:
    """Decode a JSON response body; a non-JSON or truncated body is a ``SourceError``."""
    try:
        return jsoncodec.loads(resp.content)
    except (ValueError, requests.exceptions.RequestException) as exc:
        raise SourceError(
            f"{what}: {resp.request.method} {safe_url(resp.url)} returned a body that is not valid JSON "
            f"({len(resp.content)} bytes: {str(exc)[:80]})"
        ) from None


def _reset_seconds(resp: requests.Response) -> float | None:
    """Seconds until the rate-limit window resets, from either header family (case-insensitive)."""
    for name in ("ratelimit-reset", "x-ratelimit-reset"):
        value = resp.headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def _port(parts: Any) -> int | None:
    """The explicit port of a split URL; None when absent or not a valid port."""
    try:
        return parts.port
    except ValueError:
        return None


def _never_sent(exc: BaseException) -> bool:
    """True when a request failed before any byte reached the server (so a retry is safe)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.ReadTimeout):
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _unresolved(exc: BaseException) -> bool:
    """True when the host name did not resolve (DNS)."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(exc, requests.exceptions.ConnectionError) and isinstance(reason, urllib3.exceptions.NameResolutionError)


def _reason(exc: BaseException) -> str:
    """The innermost, human part of a requests/urllib3 exception, redacted."""
    text = str(exc)
    for marker in ("Caused by ", "] "):
        if marker in text:
            text = text.split(marker)[-1]
    return redact(text.strip("()'\" "))[:200]
