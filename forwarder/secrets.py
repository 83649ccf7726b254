"""Secret references (``env:NAME`` / ``file:PATH``) and redaction.

A resolved secret is a ``Secret``: its ``str``/``repr`` are ``'***'``, so it cannot
leak through formatting, logging or exception text by accident. Every resolved
value is also registered for ``redact``, which the log filter and the HTTP error
formatter apply to any text they emit.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path

from forwarder.errors import SecretError

_known: set[str] = set()  # configured secrets: kept for the life of the process
_recent: deque[str] = deque(maxlen=256)  # short-lived tokens: the newest few hundred
_ordered: tuple[str, ...] = ()  # both, longest first, rebuilt on change
_lock = threading.Lock()
MASK = "***"
MAX_FILE_BYTES = 256 * 1024  # a secret file holds a key or a token, never more


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
    """Remember a value so ``redact`` masks it wherever it appears."""
    global _ordered
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _known or value in _recent:
            return
        if transient:
            _recent.append(value)
        else:
            _known.add(value)
        _ordered = tuple(sorted(_known.union(_recent), key=len, reverse=True))


def redact(text: str) -> str:
    """Replace every known secret value in ``text`` with ``***``."""
    if not text:
        return text
    for value in _ordered:
        if value in text:
            text = text.replace(value, MASK)
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
            with path.open("rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)  # bounded: file:/dev/zero must not read forever
            value = raw.decode("utf-8").strip()
        except OSError as exc:
            raise SecretError(key, f"cannot read secret file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SecretError(key, f"secret file {path} is not UTF-8 text") from None
        if len(raw) > MAX_FILE_BYTES:
            raise SecretError(key, f"secret file {path} is larger than {MAX_FILE_BYTES // 1024} KiB")
        if not value:
            raise SecretError(key, f"secret file {path} is empty")
        return Secret(value)
    # Never echo the value: it may be a secret pasted in by mistake.
    raise SecretError(key, "must be a secret reference 'env:NAME' or 'file:PATH' (literal values are not accepted)")
