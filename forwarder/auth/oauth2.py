"""OAuth 2.0 client-credentials grant (RFC 6749 §4.4) with a client secret, as a ``requests`` auth class.

Client authentication (RFC 6749 §2.3.1), one of:

- ``"body"``: ``client_id`` and ``client_secret`` in the form body;
- ``"basic"``: ``Authorization: Basic base64(client_id:client_secret)`` and only
  ``grant_type`` (plus ``scope``/extras) in the body.

The id and secret go into Basic as they are (not form-encoded first): that is
what common clients (requests-oauthlib, curl) send and what servers accept.

Caching (until ``margin`` seconds before ``expires_in``, at most half the
lifetime), renewal and the reading of the answer are ``BearerTokenAuth``'s
(``forwarder/auth/bearer.py``); the client secret is revealed only in the token
request.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from forwarder.auth.basic import BasicAuth
from forwarder.auth.bearer import BearerTokenAuth
from forwarder.http import HttpSettings, safe_url
from forwarder.secrets import Secret


class OAuth2ClientCredentials(BearerTokenAuth):
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
        super().__init__(token_url, what=what, settings=settings, margin=margin, clock=clock)
        self.client_id = client_id
        self.client_secret = client_secret
        self.client_auth = client_auth
        self.scope = scope
        self.extra = dict(extra or {})

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({safe_url(self.token_url)!r}, client_id={self.client_id!r}, ***)"

    def token_request(self) -> dict[str, Any]:
        """The form body of one token request, with the secret in it or in Basic auth."""
        form = {"grant_type": "client_credentials", **self.extra}
        if self.scope:
            form["scope"] = self.scope
        if self.client_auth == "basic":
            return {"data": form, "auth": BasicAuth(self.client_id, self.client_secret)}
        form["client_id"] = self.client_id
        form["client_secret"] = self.client_secret.reveal()
        return {"data": form}
