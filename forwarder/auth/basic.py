"""HTTP Basic authentication whose wire form is a registered secret.

``requests.auth.HTTPBasicAuth`` builds ``base64(user:password)`` on every request,
out of sight of redaction: a server echoing the header in an error body would put
it in a log line. Here the encoded value is a ``Secret`` (``basic_credentials``),
so that form is masked like the password itself.
"""

from __future__ import annotations

import requests

from forwarder.secrets import Secret, basic_credentials


class BasicAuth(requests.auth.AuthBase):
    """``Authorization: Basic base64(user:password)`` (UTF-8, RFC 7617)."""

    def __init__(self, user: str, password: Secret) -> None:
        self.user = user
        self._encoded = basic_credentials(user, password)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Basic {self._encoded.reveal()}"
        return request

    def __repr__(self) -> str:
        return f"BasicAuth({self.user!r}, ***)"
