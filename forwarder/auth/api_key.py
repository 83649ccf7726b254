"""A static API key sent in one request header (Carbon Black Cloud's ``X-Auth-Token``).

There is no token exchange and no expiry, so there is nothing to refresh: a 401
means the key itself is wrong and must not be retried.
"""

from __future__ import annotations

import requests

from forwarder.secrets import Secret


class ApiKeyAuth(requests.auth.AuthBase):
    """Put ``secret`` in the ``header`` of every request; the value is revealed only here."""

    def __init__(self, header: str, secret: Secret) -> None:
        self.header = header
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = self.secret.reveal()
        return request

    def __repr__(self) -> str:
        return f"ApiKeyAuth({self.header!r}, ***)"
