"""Timestamp parsing and formatting: the only place that turns vendor times into UTC.

Accepted inputs: ISO-8601 / RFC 3339 with ``Z`` or a numeric offset and 0-9
fraction digits (beyond microseconds is truncated), a space instead of ``T``
(parsed by ``datetime.fromisoformat``, which is implemented in C),
date-only strings, epoch seconds or milliseconds (int, float or digit string),
and aware or naive ``datetime`` (naive means UTC).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import reprlib
from typing import Any

from forwarder.errors import TimeParseError

UTC = dt.timezone.utc

_EPOCH = re.compile(r"\d+(\.\d+)?")
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_MS_THRESHOLD = 100_000_000_000


def parse_time(value: object) -> dt.datetime:
    """Parse a vendor timestamp into an aware UTC datetime; ``TimeParseError`` if it is not one.

    Whatever the value (huge epochs, year 1 with an offset, NaN, nested objects),
    only ``TimeParseError`` comes out: one bad vendor time is one bad record.
    """
    if type(value) is dt.datetime and value.tzinfo is UTC:
        return value  # already an event's time (every event carries one): nothing to parse
    try:
        return _parse(value)
    except TimeParseError:
        raise
    except (ValueError, OverflowError, OSError, TypeError) as exc:
        raise TimeParseError(f"not a timestamp: {reprlib.repr(value)} ({exc})") from None


def _parse(value: object) -> dt.datetime:
    if type(value) is str and len(value) >= 10 and value[4] == "-":
        # The common case first (ISO text): fromisoformat is C-fast and takes Z,
        # offsets and up to 9 fraction digits.
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is UTC:
                return parsed
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, dt.datetime):
        if value.tzinfo is UTC:
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise TimeParseError(f"not a timestamp: {reprlib.repr(value)}")
    if isinstance(value, (int, float)):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        raise TimeParseError(f"not a timestamp: {reprlib.repr(value)}")
    text = value.strip()
    if _EPOCH.fullmatch(text):
        return _from_epoch(float(text))
    if text == value or len(text) < 10 or text[4] != "-":
        raise TimeParseError(f"not a timestamp: {reprlib.repr(value)}")
    return _parse(text)


def _from_epoch(seconds: float) -> dt.datetime:
    if abs(seconds) >= _MS_THRESHOLD:
        seconds /= 1000.0
    return dt.datetime.fromtimestamp(seconds, tz=UTC)


def format_time(value: dt.datetime, digits: int = 3) -> str:
    """RFC 3339 in UTC with ``Z`` and ``digits`` fraction digits (0, 3 or 6); years below 1000 keep 4 digits."""
    return iso(parse_time(value), _TIMESPEC[digits])


_TIMESPEC = {0: "seconds", 3: "milliseconds", 6: "microseconds"}


#: "YYYY-MM-DDTHH:MM:" per (year, month, day, hour, minute): events of a page share a few minutes.
_minutes: dict[tuple[int, int, int, int, int], str] = {}


def iso(value: dt.datetime, timespec: str = "milliseconds") -> str:
    """RFC 3339 text of an aware UTC datetime (``...T12:00:00.123Z``): the hot-path formatter.

    Events carry UTC datetimes only (``parse_time`` made them), so this skips the
    parsing ``format_time`` does; the date-and-minute part is formatted once per
    minute, and the two latest values are remembered (an event's own time alternates
    with its page's shared ``ingested_at``), which makes this about twice as fast as ``datetime.isoformat`` and
    byte-identical to it (``+00:00`` written ``Z``; years below 1000 keep 4 digits).
    """
    global _recent
    recent = _recent  # one read: another thread may replace it meanwhile
    first, second = recent
    if value is first[0] and timespec == first[1]:
        return first[2]
    if value is second[0] and timespec == second[1]:
        _recent = (second, first)
        return second[2]
    if value.tzinfo is UTC and timespec in ("milliseconds", "microseconds"):
        key = (value.year, value.month, value.day, value.hour, value.minute)
        prefix = _minutes.get(key)
        if prefix is None:
            if len(_minutes) >= 4096:
                _minutes.clear()
            prefix = _minutes[key] = f"{key[0]:04d}-{key[1]:02d}-{key[2]:02d}T{key[3]:02d}:{key[4]:02d}:"
        if timespec == "milliseconds":
            text = "%s%02d.%03dZ" % (prefix, value.second, value.microsecond // 1000)
        else:
            text = "%s%02d.%06dZ" % (prefix, value.second, value.microsecond)
    else:
        text = value.isoformat(timespec=timespec).replace("+00:00", "Z")
    _recent = ((value, timespec, text), first)
    return text


#: The two latest (value, timespec, text), most recent first.
_recent: tuple[tuple[Any, str, str], tuple[Any, str, str]] = ((None, "", ""), (None, "", ""))


def epoch_seconds(value: dt.datetime) -> float:
    """Epoch seconds rounded to milliseconds (what HEC's ``time`` wants)."""
    return round(parse_time(value).timestamp(), 3)


def now() -> dt.datetime:
    """The current time in UTC (one place, so tests can patch it)."""
    return dt.datetime.now(UTC)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
#: The longest duration accepted (ten years): anything longer is a typo, and would overflow
#: date arithmetic (``now - lookback``) or the longest wait a thread can do.
MAX_DURATION = 10 * 365.25 * 86400


def parse_duration(value: object) -> float:
    """Seconds from ``30``, ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``; ValueError otherwise
    (also for NaN, infinity, negatives and anything over ten years)."""
    seconds: float = math.nan
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == value and value >= 0:  # not NaN, not negative
            seconds = float(value) if value <= MAX_DURATION else math.inf  # a huge int never meets float()
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if math.isnan(seconds):
        raise ValueError(f"not a duration: {str(value)[:40]!r} (use e.g. 30s, 5m, 2h, 7d)")
    if seconds > MAX_DURATION:
        raise ValueError("is longer than 10 years")
    return seconds
