"""Declarative option schemas: each source and sink lists its config keys as ``Option``s.

``validate_table`` checks one TOML table against a schema and returns converted
values, raising ``ConfigError`` that names the key and the problem. This is the
only config validation code; sources and sinks only declare.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from forwarder.errors import ConfigError
from forwarder.secrets import Secret, resolve
from forwarder.timeutil import parse_duration, parse_time

MISSING: Any = object()

_KINDS = ("str", "int", "float", "bool", "secret", "duration", "time", "list", "dict", "path", "file", "dir", "url", "secure_url")
# Unicode categories no config value needs, and that disguise or break one: controls (newline, NUL,
# ESC...), format characters (bidi overrides such as U+202E, zero-width marks), line/paragraph
# separators and lone surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
MAX_DEPTH = 32  # nesting of arrays and tables in a config file; real configs use 3 or 4
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class Option:
    """One config key. ``kind`` is one of: str int float bool secret duration time list dict path
    url secure_url (``secure_url``: https, or plain http only to a loopback host such as a
    local simulator; vendor APIs get credentials, which must never cross a network in clear).
    ``path`` is a file the forwarder writes (its directory may be created), ``file`` one it
    reads (it must exist), ``dir`` a directory it creates if needed.

    ``items`` (for lists) restricts list members to ``choices``-like values; ``check``
    is an extra validator that returns an error text or None. ``multiline`` lets a secret
    hold line breaks and tabs (a PEM key); no other control character is ever accepted.
    """

    kind: str
    default: Any = MISSING
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None
    multiline: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown option kind {self.kind!r}")

    @property
    def required(self) -> bool:
        return self.default is MISSING


def validate_table(table: Any, schema: dict[str, Option], where: str) -> dict[str, Any]:
    """Check ``table`` against ``schema``; return every key (defaults filled in)."""
    if not isinstance(table, dict):
        raise ConfigError(where, "must be a table")
    unknown = sorted(set(table) - set(schema))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key (known keys: {', '.join(sorted(schema))})")
    out: dict[str, Any] = {}
    for key, opt in schema.items():
        path = f"{where}.{key}"
        if key not in table:
            if opt.required:
                raise ConfigError(path, "is required" + (f" ({opt.help})" if opt.help else ""))
            out[key] = opt.default
            continue
        out[key] = convert(table[key], opt, path)
    return out


def convert(value: Any, opt: Option, path: str) -> Any:
    """Convert and check one value."""
    kind = opt.kind
    if kind == "secret":
        result: Any = resolve(value, path)
        text = result.reveal()
        char = hidden_char(text.replace("\n", "").replace("\r", "").replace("\t", "") if opt.multiline else text)
        if char:
            raise ConfigError(path, f"the secret contains the invisible character {char}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(path, f"must be true or false, not {_show(value)}")
        result = value
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"must be an integer, not {_show(value)}")
        result = value
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"must be a number, not {_show(value)}")
        if not (isinstance(value, int) or math.isfinite(value)) or abs(value) > 1e15:
            raise ConfigError(path, f"must be a finite number of sensible size, not {_show(value)}")
        result = float(value)
    elif kind in ("str", "path", "file", "dir", "url", "secure_url"):
        if not isinstance(value, str) or not value:
            raise ConfigError(path, f"must be a non-empty string, not {_show(value)}")
        if kind in ("url", "secure_url"):
            _raise_problem(path, lambda: url_problem(value, secure=kind == "secure_url"))
        elif kind in ("path", "file", "dir"):
            _raise_problem(path, lambda: path_problem(value, kind))
        result = value
    elif kind in ("duration", "time"):
        try:
            result = parse_duration(value) if kind == "duration" else parse_time(value)
        except (ValueError, OverflowError, OSError) as exc:
            raise ConfigError(path, str(exc)) from None
    elif kind == "list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(path, f"must be a list, not {_show(value)}")
        result = value
    else:  # dict
        if not isinstance(value, dict):
            raise ConfigError(path, f"must be a table, not {_show(value)}")
        result = value
    if opt.choices is not None:
        members = result if kind == "list" else [result]
        for member in members:
            if member not in opt.choices:
                raise ConfigError(path, f"{_show(member)} is not one of {', '.join(map(str, opt.choices))}")
    if opt.minimum is not None and isinstance(result, (int, float)) and result < opt.minimum:
        raise ConfigError(path, f"must be at least {opt.minimum:g}")
    if opt.maximum is not None and isinstance(result, (int, float)) and result > opt.maximum:
        raise ConfigError(path, f"must be at most {opt.maximum:g}")
    if opt.check is not None:
        check = opt.check
        _raise_problem(path, lambda: check(result))
    return result


def _raise_problem(path: str, find: Callable[[], str | None]) -> None:
    """ConfigError naming ``path`` if ``find`` reports a problem; a ValueError from it (urlsplit
    refusing ``https://[::zz]/``, say) is one too."""
    try:
        problem = find()
    except ValueError as exc:
        problem = f"is not valid: {str(exc)[:100]}"
    if problem:
        raise ConfigError(path, problem)


def url_problem(value: str, secure: bool) -> str | None:
    """Why ``value`` is not an acceptable base URL, or None."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an https:// URL, not {_show(value)}"
    problem = address_problem(value)
    if problem:
        return problem
    if parts.username or parts.password:
        return "must not contain credentials (they have their own keys)"
    if parts.query or parts.fragment:
        return "must not carry a query string or fragment"
    if secure and cleartext(value):
        return "must use https:// (plain http is only accepted for a loopback host)"
    return None


def cleartext(url: str) -> bool:
    """True when ``url`` is plain http to a host that is not loopback: credentials would cross a network in clear."""
    parts = urlsplit(url)
    return parts.scheme.lower() == "http" and not _loopback(parts.hostname or "")


def require_tls(urls: list[str], allowed: bool, key: str) -> None:
    """A sink's URLs carry credentials and events: plain http to a non-loopback host needs
    ``allow_insecure_http = true`` (``key`` names the URL option in the error)."""
    if allowed:
        return
    for url in urls:
        if cleartext(url):
            host = urlsplit(url).hostname
            raise ConfigError(key, f"plain http:// to {host} would send credentials and events in clear: "
                                   "use https://, or set allow_insecure_http = true on this sink")


def address_problem(url: str) -> str | None:
    """Why the host or port of an http(s) ``url`` cannot be connected to, or None.

    A host name follows RFC 1123 (at most 253 characters, dot-separated labels of 1-63 letters,
    digits and inner hyphens); an IP literal must parse; a port is 1-65535.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        port = 0
    if port == 0:
        return "has a port that is not a number from 1 to 65535"
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return "has a bracketed host that is not an IPv6 address"
        return None
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.rstrip(".").split(".")):
        return "has a host name that is not valid (RFC 1123: at most 253 characters, labels of 1-63 letters, digits or '-')"
    return None


def path_problem(value: str, kind: str) -> str | None:
    """Why ``value`` cannot be used as a ``path`` (written), ``file`` (read) or ``dir``, or None.

    Written paths and directories may be created: the nearest existing ancestor must be a
    directory. Relative paths are taken from the current directory, as they are when used.
    """
    if "\0" in value:
        return "must not contain a NUL character"
    path = Path(value)
    if any(len(os.fsencode(part)) > 255 for part in path.parts):
        return "has a name longer than 255 bytes"
    if len(os.fsencode(str(path))) > 4000:
        return "is longer than 4000 bytes"
    try:
        if kind == "file":
            return None if path.is_file() and os.access(path, os.R_OK) else f"{value} is not a readable file"
        if kind == "dir" and path.exists() and not path.is_dir():
            return f"{value} exists and is not a directory"
        if kind == "path" and path.is_dir():
            return f"{value} is a directory, not a file"
        ancestor = path.absolute().parent if kind == "path" else path.absolute()
        while not ancestor.exists():
            ancestor = ancestor.parent
    except OSError as exc:
        return f"cannot be used: {exc.strerror}"
    if not ancestor.is_dir():
        return f"cannot be created: {ancestor} is not a directory"
    return None


def hidden_char(text: str) -> str | None:
    """The first control, bidi/format or separator character in ``text`` as ``U+XXXX``, or None."""
    if text.isprintable():  # the common case, decided in C
        return None
    for char in text:
        if unicodedata.category(char) in _HIDDEN:
            return f"U+{ord(char):04X}"
    return None


def document_problem(data: Any) -> tuple[str, str] | None:
    """(key, problem) for the first value or key of a parsed config nested deeper than
    ``MAX_DEPTH`` or holding an invisible character; None if there is none.

    Walked without recursion, so a hostile document cannot exhaust the stack here.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return re.sub(r"(\[\d+\])+$", "", path), f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            for key, member in value.items():
                char = hidden_char(key)
                if char:
                    return path or "(top level)", f"has a key containing the invisible character {char}"
                stack.append((member, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((member, _member_path(path, n, member), depth + 1) for n, member in enumerate(value))
        elif isinstance(value, str):
            char = hidden_char(value)
            if char:
                return path, f"contains the invisible character {char}"
    return None


def _member_path(path: str, index: int, member: Any) -> str:
    """``source "cb"`` for a named table in an array (as other errors name it), else ``source[0]``."""
    name = member.get("name") if isinstance(member, dict) else None
    if isinstance(name, str) and 0 < len(name) <= 64 and name.isprintable():
        return f'{path} "{name}"'
    return f"{path}[{index}]"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _show(value: Any) -> str:
    """Describe a bad value without echoing long strings (they may be secrets)."""
    if isinstance(value, Secret):
        return "a secret"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a {len(value)}-character string"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return f"{type(value).__name__} {value!r}"[:60]
