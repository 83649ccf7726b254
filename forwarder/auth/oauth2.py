"""OAuth 2.0 client-credentials grant (RFC 6749 §4.4) as a ``requests`` auth class.

The token is fetched on first use and cached until ``margin`` seconds before the
``expires_in`` the server returned (at most half the lifetime, so very short
lifetimes still get used), then fetched again. ``refresh()`` drops the cached
token; the HTTP layer calls it once when a request comes back 401.

Client authentication (RFC 6749 §2.3.1), one of:

- ``"body"``: ``client_id`` and ``client_secret`` in the form body;
- ``"basic"``: ``Authorization: Basic base64(client_id:client_secret)`` and only
  ``grant_type`` (plus ``scope``/extras) in the body.

The id and secret go into Basic as they are (not form-encoded first): that is
what common clients (requests-oauthlib, curl) send and what servers accept.

A vendor with another client-authentication method (e.g. a signed JWT client
assertion) subclasses this and overrides ``token_request``.

Token requests go through ``forwarder.http`` (a 429 or 5xx from the token
endpoint is retried with backoff). The access token is wrapped in ``Secret``, so
it is redacted wherever it could surface; the client secret is revealed only in
the token request.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import requests

from forwarder.errors import AuthError
from forwarder.http import HttpClient, HttpSettings, body_excerpt, response_json, safe_url
from forwarder.secrets import Secret

#: Lifetime assumed when the server does not say (``expires_in`` is optional).
DEFAULT_LIFETIME = 300.0


class OAuth2ClientCredentials(requests.auth.AuthBase):
    """Bearer tokens from a client-credentials grant, cached and refreshed before they expire."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        *,
        client_auth: str = "body",
        scope: str | None = None,
        extra: dict[str, str] | None = None,
        what: str = "oauth2 token endpoint",
        settings: HttpSettings | None = None,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if client_auth not in ("body", "basic"):
            raise ValueError(f"client_auth must be 'body' or 'basic', not {client_auth!r}")
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_auth = client_auth
        self.scope = scope
        self.extra = dict(extra or {})
        self.what = what
        self.margin = margin
        self.clock = clock
        self.http = HttpClient(what, settings)
        #: The ``scope`` the server granted (a string; a JSON list is joined with spaces).
        self.granted_scope: str | None = None
        self.fetched = 0
        self._token: Secret | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token().reveal()}"
        return request

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({safe_url(self.token_url)!r}, client_id={self.client_id!r}, ***)"

    def token(self) -> Secret:
        """The current access token, fetching a new one when none is cached or it is about to expire."""
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
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

    def token_request(self) -> tuple[dict[str, str], requests.auth.AuthBase | None]:
        """The form fields and the request auth of one token request (override for other client auth)."""
        form = {"grant_type": "client_credentials", **self.extra}
        if self.scope:
            form["scope"] = self.scope
        if self.client_auth == "basic":
            return form, requests.auth.HTTPBasicAuth(self.client_id, self.client_secret.reveal())
        form["client_id"] = self.client_id
        form["client_secret"] = self.client_secret.reveal()
        return form, None

    def _fetch(self) -> None:
        form, auth = self.token_request()
        asked = self.clock()
        resp = self.http.request(
            "POST",
            self.token_url,
            ok=(200, 400),
            auth=auth if auth is not None else False,
            data=form,
            headers={"Accept": "application/json"},
        )
        if resp.status_code == 400:
            # RFC 6749 §5.2: invalid_client / invalid_grant / unauthorized_client come back as 400.
            raise AuthError(self.what, "POST", safe_url(self.token_url), 400, body_excerpt(resp))
        body = response_json(resp, self.what)
        access = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access, str) or not access:
            raise self._bad("the response has no access_token")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise self._bad(f"unsupported token_type {str(token_type)[:20]!r} (expected Bearer)")
        lifetime = _seconds(body.get("expires_in"))
        scope = body.get("scope")
        self.granted_scope = " ".join(map(str, scope)) if isinstance(scope, list) else scope if isinstance(scope, str) else None
        self._token = Secret(access, transient=True)
        self._renew_at = asked + lifetime - min(self.margin, lifetime / 2)
        self.fetched += 1

    def _bad(self, problem: str) -> AuthError:
        return AuthError(self.what, "POST", safe_url(self.token_url), 200, problem)


def _seconds(value: Any) -> float:
    """``expires_in`` as seconds (a number or a digit string); the default when absent or unusable."""
    if isinstance(value, bool):
        return DEFAULT_LIFETIME
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME
    return seconds if seconds > 0 else DEFAULT_LIFETIME
