"""Bearer tokens bought from an OAuth 2.0 token endpoint, cached until shortly before they expire.

The one token cache of the forwarder: a subclass says how to ask for a token
(``token_request``: the body and client authentication of one request); this
class sends it through ``forwarder.http`` (a 429 or 5xx from the token endpoint
is retried with backoff), reads the RFC 6749 §5.1 answer and reuses the token
until ``margin`` seconds before the ``expires_in`` the server returned (at most
``margin_share`` of the lifetime, so very short lifetimes still get used).
``refresh()`` drops the cached token; the HTTP layer calls it once when a
request comes back 401.

The access token is wrapped in a transient ``Secret``, so it is redacted wherever
it could surface.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import requests

from forwarder.errors import AuthError, HttpError
from forwarder.http import HttpClient, HttpSettings, RateLimiter, response_json, safe_url
from forwarder.secrets import Secret

#: Lifetime assumed when the server does not say (``expires_in`` is optional).
DEFAULT_LIFETIME = 300.0


class BearerTokenAuth(requests.auth.AuthBase):
    """``Authorization: Bearer`` with a token from ``token_url``, fetched on first use; thread-safe."""

    #: Token endpoint statuses that mean the credentials were refused (RFC 6749 §5.2), besides 401/403.
    REFUSED: tuple[int, ...] = (400,)
    #: Whether the answer's ``token_type`` (when present) must be ``Bearer``.
    CHECK_TOKEN_TYPE = True

    def __init__(
        self,
        token_url: str,
        *,
        what: str,
        settings: HttpSettings | None = None,
        limiter: RateLimiter | None = None,
        margin: float = 60.0,
        margin_share: float = 0.5,
        default_ttl: float = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.what = what
        self.margin = margin
        self.margin_share = margin_share
        self.default_ttl = default_ttl
        self.http = HttpClient(what, settings, limiter=limiter)
        #: The ``scope`` the server granted (a string; a JSON list is joined with spaces).
        self.granted_scope: str | None = None
        self.fetched = 0
        self._now = clock
        self._token: Secret | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token().reveal()}"
        return request

    def token_request(self) -> dict[str, Any]:
        """The ``requests`` arguments of one token request: body (``data``/``json``) and optional ``auth``."""
        raise NotImplementedError

    def refusal_hint(self) -> str:
        """Words added to the error when the endpoint refuses the request (e.g. a setting to try)."""
        return ""

    def token(self) -> Secret:
        """The current access token, fetching a new one when none is cached or it is about to expire."""
        with self._lock:
            if self._token is None or self._now() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def refresh(self) -> None:
        """Forget the cached token (the server refused it); the next request fetches a new one."""
        with self._lock:
            self._token = None

    def close(self) -> None:
        """Release the token endpoint's connections."""
        self.http.close()

    def _fetch(self) -> None:
        sent = {"auth": False, **self.token_request()}
        asked = self._now()
        try:
            resp = self.http.request("POST", self.token_url, headers={"Accept": "application/json"}, **sent)
        except HttpError as exc:
            if exc.status not in self.REFUSED:
                raise
            # invalid_client / invalid_grant / unauthorized_client come back as 400: a credentials problem.
            raise AuthError(exc.what, exc.method, exc.url, exc.status, exc.detail + self.refusal_hint()) from None
        body = response_json(resp, self.what)
        access = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise self._bad("the response has no access_token")
        token_type = body.get("token_type", "Bearer")
        if self.CHECK_TOKEN_TYPE and (not isinstance(token_type, str) or token_type.lower() != "bearer"):
            raise self._bad(f"unsupported token_type {str(token_type)[:20]!r} (expected Bearer)")
        lifetime = _seconds(body.get("expires_in"), self.default_ttl)
        scope = body.get("scope")
        self.granted_scope = " ".join(map(str, scope)) if isinstance(scope, list) else scope if isinstance(scope, str) else None
        self._token = Secret(access, transient=True)
        # Renew early (from when the token was asked for) so a token never expires between check and use.
        self._renew_at = asked + lifetime - min(self.margin, lifetime * self.margin_share)
        self.fetched += 1

    def _bad(self, problem: str) -> AuthError:
        return AuthError(self.what, "POST", safe_url(self.token_url), 200, problem)


def _seconds(value: Any, default: float) -> float:
    """``expires_in`` as seconds (a number or a digit string); ``default`` when absent or unusable."""
    if isinstance(value, bool):
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default
