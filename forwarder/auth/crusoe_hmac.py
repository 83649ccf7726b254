"""Crusoe Cloud request signing (signature version 1.0) as a ``requests`` auth class.

Every request carries its own signature, so every page and every retry is
signed afresh with the current time. The signed payload is four lines, each
ending in a newline::

    <path incl. version prefix>\\n<canonical query>\\n<VERB>\\n<timestamp>\\n

The canonical query is the query split into pairs, form-decoded, grouped by key
(values in order of appearance), keys sorted by byte value and re-encoded with
form encoding (space as ``+``; everything but ``A-Z a-z 0-9 - _ . ~`` as
upper-case ``%XX``). The signer also rewrites the URL so the query actually
sent is that canonical string: what is signed is byte for byte what is sent.

The secret key is unpadded URL-safe base64; the HMAC-SHA256 key is its decoded
bytes. The signature is unpadded URL-safe base64, sent as
``Authorization: Bearer 1.0:<access key id>:<signature>`` together with
``X-Crusoe-Timestamp`` (RFC 3339 UTC, second precision, ``Z`` form).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from typing import Callable
from urllib.parse import quote_plus, unquote_to_bytes, urlsplit, urlunsplit

import requests

from forwarder.secrets import Secret
from forwarder.timeutil import format_time, now

SIGNATURE_VERSION = "1.0"
TIMESTAMP_HEADER = "X-Crusoe-Timestamp"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def decode_key(secret_key: str) -> bytes:
    """The HMAC key: ``secret_key`` decoded from unpadded URL-safe base64 (ValueError if it is not)."""
    text = secret_key.strip().rstrip("=")
    if not text or not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("the secret key is not URL-safe base64 (as shown once when the key was created)")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the secret key is not URL-safe base64 (as shown once when the key was created)") from None


def query_pairs(raw_query: str) -> list[tuple[bytes, bytes]]:
    """The decoded ``(key, value)`` byte pairs of a raw query, in order (ValueError if Crusoe would refuse it).

    Bytes, not text: ``%XX`` is a byte, so an escape that is not UTF-8 survives canonicalization unchanged.
    """
    pairs = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        if ";" in piece:
            raise ValueError("a query parameter contains ';'")
        if _BAD_ESCAPE.search(piece):
            raise ValueError("a query parameter contains an invalid %-escape")
        key, _, value = piece.partition("=")
        pairs.append((unquote_to_bytes(key.replace("+", " ")), unquote_to_bytes(value.replace("+", " "))))
    return pairs


def canonical_query(raw_query: str) -> str:
    """Crusoe's canonical form of a query: sorted by key, form-encoded, repeated keys kept in order."""
    groups: dict[bytes, list[bytes]] = {}
    for key, value in query_pairs(raw_query):
        groups.setdefault(key, []).append(value)
    return "&".join(
        f"{quote_plus(key, safe='')}={quote_plus(value, safe='')}" for key in sorted(groups) for value in groups[key]
    )


def signature(key: bytes, path: str, canonical: str, method: str, timestamp: str) -> str:
    """The unpadded URL-safe base64 HMAC-SHA256 of the four-line payload."""
    payload = f"{path}\n{canonical}\n{method.upper()}\n{timestamp}\n"
    digest = hmac.new(key, payload.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class CrusoeHmacAuth(requests.auth.AuthBase):
    """Sign each request with an access key id and a secret key (``Secret``).

    ``clock`` returns the current UTC time (tests shift it to provoke skew).
    """

    def __init__(self, access_key_id: str, secret_key: Secret, clock: Callable[[], dt.datetime] = now) -> None:
        decode_key(secret_key.reveal())  # fail at construction, not on the first request
        self.access_key_id = access_key_id
        self.secret_key = secret_key
        self.clock = clock

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url or "")
        canonical = canonical_query(parts.query)
        r.url = urlunsplit(parts._replace(query=canonical))
        timestamp = format_time(self.clock(), 0)
        sig = signature(decode_key(self.secret_key.reveal()), parts.path, canonical, r.method or "GET", timestamp)
        r.headers[TIMESTAMP_HEADER] = timestamp
        r.headers["Authorization"] = f"Bearer {SIGNATURE_VERSION}:{self.access_key_id}:{sig}"
        return r
