"""Declarative option schemas: each source and sink lists its config keys as ``Option``s.

``validate_table`` checks one TOML table against a schema and returns converted
values, raising ``ConfigError`` that names the key and the problem. This is the
only config validation code; sources and sinks only declare.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from forwarder.errors import ConfigError
from forwarder.secrets import Secret, resolve
from forwarder.timeutil import parse_duration, parse_time

MISSING: Any = object()

_KINDS = ("str", "int", "float", "bool", "secret", "duration", "time", "list", "dict", "path", "url", "secure_url")


@dataclass(frozen=True)
class Option:
    """One config key. ``kind`` is one of: str int float bool secret duration time list dict path
    url secure_url (``secure_url``: https, or plain http only to a loopback host such as a
    local simulator; vendor APIs get credentials, which must never cross a network in clear).

    ``items`` (for lists) restricts list members to ``choices``-like values; ``check``
    is an extra validator that returns an error text or None.
    """

    kind: str
    default: Any = MISSING
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = None

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
        result = float(value)
    elif kind in ("str", "path", "url", "secure_url"):
        if not isinstance(value, str) or not value:
            raise ConfigError(path, f"must be a non-empty string, not {_show(value)}")
        if kind in ("url", "secure_url"):
            problem = url_problem(value, secure=kind == "secure_url")
            if problem:
                raise ConfigError(path, problem)
        result = value
    elif kind == "duration":
        try:
            result = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None
    elif kind == "time":
        try:
            result = parse_time(value)
        except ValueError as exc:
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
        problem = opt.check(result)
        if problem:
            raise ConfigError(path, problem)
    return result


def url_problem(value: str, secure: bool) -> str | None:
    """Why ``value`` is not an acceptable base URL, or None."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an https:// URL, not {_show(value)}"
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
