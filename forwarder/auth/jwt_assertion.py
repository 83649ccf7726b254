"""OAuth 2.0 client credentials with an ES256 private-key JWT client assertion (RFC 7523).

Each token request carries a freshly signed assertion: header ``alg=ES256`` and
``kid``; claims ``iss`` = ``sub`` = the client (tenant) id, ``aud`` = the token
URL, a random ``jti``, ``iat`` = ``nbf`` = now and a short ``exp``. The bearer
token it buys is reused until shortly before it expires (``expires_in``, or
``default_ttl`` when the server does not say); ``refresh()``, which
``HttpClient`` calls once on a 401, drops it so the next request gets a new one.

The token request body is JSON by default (what Progress's own sample sends) or
form-encoded (what RFC 7523 describes) when ``body="form"``.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Callable

import jwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forwarder.errors import AuthError, ConfigError, HttpError
from forwarder.http import HttpClient, HttpSettings, RateLimiter, response_json, safe_url
from forwarder.secrets import Secret

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BODY_ENCODINGS = ("json", "form")


def load_es256_key(pem: Secret, passphrase: Secret | None, key: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key in ``pem``; ``ConfigError`` naming ``key`` (never the key) if it is not one."""
    password = passphrase.reveal().encode() if passphrase is not None else None
    try:
        loaded = serialization.load_pem_private_key(pem.reveal().encode(), password=password)
    except TypeError:
        problem = "the PEM key is encrypted: set private_key_passphrase" if password is None else "the PEM key is not encrypted: remove private_key_passphrase"
        raise ConfigError(key, problem) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(key, "is not a readable PEM private key (or the passphrase is wrong)") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
        raise ConfigError(key, "must be an EC P-256 private key (ES256)")
    return loaded


class JwtAssertionAuth(requests.auth.AuthBase):
    """Bearer auth whose token comes from an ES256 client assertion; thread-safe."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        key_id: str,
        private_key: ec.EllipticCurvePrivateKey,
        settings: HttpSettings | None = None,
        limiter: RateLimiter | None = None,
        body: str = "json",
        lifetime: float = 120.0,
        default_ttl: float = 300.0,
        what: str = "token endpoint",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if body not in BODY_ENCODINGS:
            raise ValueError(f"body must be one of {BODY_ENCODINGS}")
        self.token_url = token_url
        self.client_id = client_id
        self.key_id = key_id
        self._key = private_key
        self.body = body
        self.lifetime = lifetime
        self.default_ttl = default_ttl
        self.clock = clock
        self.http = HttpClient(what, settings, limiter=limiter)
        self._token: Secret | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token().reveal()}"
        return request

    def __repr__(self) -> str:
        return f"JwtAssertionAuth({safe_url(self.token_url)!r}, kid={self.key_id!r})"

    def assertion(self) -> str:
        """A newly signed client assertion (single use: its ``jti`` is unique)."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + int(self.lifetime),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.key_id})

    def token(self) -> Secret:
        """The current bearer token, fetched anew when missing or about to expire."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
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
        assertion = Secret(self.assertion(), transient=True)  # registered, so an error body echoing it is redacted
        params = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion.reveal(),
        }
        sent = {"json": params} if self.body == "json" else {"data": params}
        try:
            resp = self.http.request("POST", self.token_url, auth=False, **sent)
        except HttpError as exc:
            if exc.status not in (400, 415):
                raise
            # OAuth servers refuse a bad assertion or grant with 400: that is a credentials problem.
            hint = ' (if this server wants a form-encoded token request, set token_body = "form")' if self.body == "json" else ""
            raise AuthError(exc.what, exc.method, exc.url, exc.status, exc.detail + hint) from None
        data = response_json(resp, self.http.what)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(self.http.what, "POST", safe_url(self.token_url), resp.status_code, "the response has no access_token")
        ttl = data.get("expires_in")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
            ttl = self.default_ttl
        self._token = Secret(token, transient=True)
        # Renew a little early so a token never expires between check and use.
        self._renew_at = time.monotonic() + ttl - min(30.0, ttl / 4)
