"""IP addresses as vendors write them: ``ip:port`` text split into a canonical IP and a port."""

from __future__ import annotations

import functools
import ipaddress
from typing import Any


def split_address(value: Any) -> tuple[str | None, int | None]:
    """(ip, port) of ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:443``, ``[2001:db8::1]`` or ``2001:db8::1``.

    The ip is in canonical spelling. ``(None, None)`` for anything else: not a
    string, no IP address, a port that is not 0-65535, or text after ``]`` that is
    not ``:port``; callers keep such a value whole (it is evidence, not an address).
    """
    return _split(value) if isinstance(value, str) else (None, None)


def _split(value: str) -> tuple[str | None, int | None]:
    """``split_address`` of a string."""
    text = value.strip()
    port: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None, None
        text, port = host, rest[1:] or None
    elif text.count(":") == 1:
        text, port = text.split(":")
    ip = _canonical_ip(text)
    if ip is None or port is None:
        return ip, None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        return None, None
    return ip, int(port)


@functools.lru_cache(maxsize=65536)
def _canonical_ip(text: str) -> str | None:
    """The canonical spelling of an IP address, or None (cached: the same clients come back
    event after event, while their source ports differ)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
