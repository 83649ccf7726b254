"""OAuth 2.0 client credentials with an ES256 private-key JWT client assertion (RFC 7523).

Each token request carries a freshly signed assertion: header ``alg=ES256`` and
``kid``; claims ``iss`` = ``sub`` = the client (tenant) id, ``aud`` = the token
URL, a random ``jti``, ``iat`` = ``nbf`` = now and a short ``exp``. Caching of the
bearer token it buys (until 30 s, at most a quarter of the lifetime, before
``expires_in``, or ``default_ttl`` when the server does not say) and ``refresh()``
are ``BearerTokenAuth``'s (``forwarder/auth/bearer.py``). Progress does not
document ``token_type``, so it is not checked.

The token request body is JSON by default (what Progress's own sample sends) or
form-encoded (what RFC 7523 describes) when ``body="form"``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forwarder.auth.bearer import DEFAULT_LIFETIME, BearerTokenAuth
from forwarder.errors import ConfigError
from forwarder.http import HttpSettings, RateLimiter, safe_url
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


class JwtAssertionAuth(BearerTokenAuth):
    """Bearer auth whose token comes from an ES256 client assertion; thread-safe."""

    REFUSED = (400, 415)  # a bad assertion or grant, or a body encoding this server does not take
    CHECK_TOKEN_TYPE = False

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
        default_ttl: float = DEFAULT_LIFETIME,
        what: str = "token endpoint",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if body not in BODY_ENCODINGS:
            raise ValueError(f"body must be one of {BODY_ENCODINGS}")
        super().__init__(
            token_url, what=what, settings=settings, limiter=limiter, margin=30.0, margin_share=0.25, default_ttl=default_ttl
        )
        self.client_id = client_id
        self.key_id = key_id
        self._key = private_key
        self.body = body
        self.lifetime = lifetime
        #: Wall clock of the assertion's claims (renewal runs on the monotonic clock).
        self.clock = clock

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

    def token_request(self) -> dict[str, Any]:
        """A fresh assertion in a JSON or form body."""
        assertion = Secret(self.assertion(), transient=True)  # registered, so an error body echoing it is redacted
        params = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion.reveal(),
        }
        return {"json": params} if self.body == "json" else {"data": params}

    def refusal_hint(self) -> str:
        return ' (if this server wants a form-encoded token request, set token_body = "form")' if self.body == "json" else ""
