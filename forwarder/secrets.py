"""Secret references (``env:NAME`` / ``file:PATH``) and redaction.

A resolved secret is a ``Secret``: its ``str``/``repr`` are ``'***'``, so it cannot
leak through formatting, logging or exception text by accident. Every resolved
value is also registered for ``redact``, which the log filter, the dead-letter
file and the HTTP error formatter apply to any text they emit.

A server that echoes a request back shows a credential in its wire form, so each
value is registered with its URL-encoded and JSON-escaped forms, ``basic_credentials``
and ``api_key_credentials`` register the base64 forms HTTP Basic and Elasticsearch's
``ApiKey`` put on the wire, and ``redact`` also masks whatever follows an
``Authorization`` scheme word (Basic, Bearer, ApiKey, Splunk) when it looks like a
credential (e.g. a per-request HMAC signature).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
from collections import deque
from pathlib import Path
from urllib.parse import quote, quote_plus

from forwarder.errors import SecretError

_known: set[str] = set()  # configured secrets: kept for the life of the process
_recent: deque[str] = deque(maxlen=256)  # short-lived tokens: the newest few hundred
_ordered: tuple[str, ...] = ()  # both, longest first, rebuilt on change
_lock = threading.Lock()
MASK = "***"


class Secret:
    """A secret value that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str, *, transient: bool = False) -> None:
        """``transient`` marks a short-lived value (an access token, an assertion): only the
        newest few hundred of those are remembered for redaction, so a daemon that refreshes
        tokens for months does not slow its logging down."""
        self._value = value
        register(value, transient=transient)

    def reveal(self) -> str:
        """The plain value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = lambda self: MASK  # noqa: E731

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def register(value: str, *, transient: bool = False) -> None:
    """Remember a value (and its URL-encoded and JSON-escaped forms) so ``redact`` masks it wherever it appears."""
    global _ordered
    if not value or len(value) < 4:
        return
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    with _lock:
        new = [f for f in forms if f not in _known and f not in _recent]
        if not new:
            return
        for form in new:
            if transient:
                _recent.append(form)
            else:
                _known.add(form)
        _ordered = tuple(sorted(_known.union(_recent), key=len, reverse=True))


def forget_registered() -> None:
    """Forget every remembered value (a test starts without the secrets of the tests before it)."""
    global _ordered
    with _lock:
        _known.clear()
        _recent.clear()
        _ordered = ()


def basic_credentials(user: str, password: "Secret") -> "Secret":
    """``base64(user:password)`` as HTTP Basic sends it (UTF-8, RFC 7617), registered for redaction."""
    return Secret(base64.b64encode(f"{user}:{password.reveal()}".encode()).decode("ascii"))


def api_key_credentials(api_key: "Secret") -> "Secret":
    """An Elasticsearch API key in the encoded form the ``ApiKey`` header carries.

    Given as ``id:key`` it is encoded; given encoded, its decoded ``id:key`` and the key
    alone are registered too, so every form of it is redacted.
    """
    value = api_key.reveal()
    if ":" in value:
        register(value.split(":", 1)[1])
        return Secret(base64.b64encode(value.encode()).decode("ascii"))
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError):
        return api_key
    register(decoded)
    register(decoded.split(":", 1)[-1])
    return api_key


# What follows an Authorization scheme word, when it looks like a credential (has a digit or + / =).
_AUTH_WORDS = ("basic", "bearer", "apikey", "splunk")
_AUTH_VALUE = re.compile(r"\b(Basic|Bearer|ApiKey|Splunk)(\s+)(?=[^\s,;\"']*[0-9+/=])[A-Za-z0-9+/=._~:-]{8,}", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace every known secret value in ``text``, and credential-like Authorization values, with ``***``."""
    if not text:
        return text
    values = _ordered
    while values:
        found = False
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
                found = True
        # A mask can join its neighbours into another value only if that value contains '*':
        # look again for those (each pass shortens the text, so this ends).
        values = tuple(v for v in _ordered if "*" in v) if found else ()
    lower = text.lower()
    if any(word in lower for word in _AUTH_WORDS):  # the regex costs more than this test
        text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return text


def resolve(ref: object, key: str) -> Secret:
    """Resolve ``env:NAME`` or ``file:PATH``; anything else is a config error naming ``key``."""
    if isinstance(ref, Secret):
        return ref
    if not isinstance(ref, str):
        raise SecretError(key, "must be a secret reference 'env:NAME' or 'file:PATH'")
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if not name or value is None:
            raise SecretError(key, f"environment variable {name or '(empty name)'} is not set")
        if not value:
            raise SecretError(key, f"environment variable {name} is empty")
        return Secret(value)
    if ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(key, f"cannot read secret file {path}: {exc.strerror}") from None
        if not value:
            raise SecretError(key, f"secret file {path} is empty")
        return Secret(value)
    # Never echo the value: it may be a secret pasted in by mistake.
    raise SecretError(key, "must be a secret reference 'env:NAME' or 'file:PATH' (literal values are not accepted)")
