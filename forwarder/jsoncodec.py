"""All JSON encoding and decoding goes through here.

orjson is used when it is installed (it is a dependency of the package); inside
Splunk's own Python, where no compiled wheel may ship, the standard library takes
over with the same results: compact separators, UTF-8 bytes, sorted keys for the
canonical form.

``iter_values`` streams the records of a large JSON file (a vendor's export or
report) without holding the file in memory.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import re as _re
from itertools import chain as _chain
from typing import Any, Iterator, TextIO

try:  # pragma: no cover - exercised by whichever interpreter runs the tests
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

JSONDecodeError = ValueError  # orjson.JSONDecodeError and json.JSONDecodeError both subclass it


def _default(obj: Any) -> Any:
    if isinstance(obj, _dt.datetime):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


if _orjson is not None:
    _SORT = _orjson.OPT_SORT_KEYS
    _NONSTR = _orjson.OPT_NON_STR_KEYS

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON."""
        return _orjson.dumps(obj, default=_default, option=_NONSTR)

    def canonical(obj: Any) -> bytes:
        """Compact JSON with sorted keys: stable input for hashing."""
        return _orjson.dumps(obj, default=_default, option=_SORT | _NONSTR)

    def loads(data: bytes | bytearray | memoryview | str) -> Any:
        """Parse JSON; raises ValueError on bad input."""
        return _orjson.loads(data)

else:  # pragma: no cover

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON."""
        return _json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False).encode()

    def canonical(obj: Any) -> bytes:
        """Compact JSON with sorted keys: stable input for hashing."""
        return _json.dumps(
            obj, default=_default, separators=(",", ":"), ensure_ascii=False, sort_keys=True
        ).encode()

    def loads(data: bytes | bytearray | memoryview | str) -> Any:
        """Parse JSON; raises ValueError on bad input."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = bytes(data).decode("utf-8")
        return _json.loads(data)


def dumps_str(obj: Any) -> str:
    """Compact JSON as text."""
    return dumps(obj).decode()


_CHUNK = 1 << 16
_BLANK = " \t\n\r"
_BLANKS = _re.compile(r"[ \t\n\r]*")
_raw_decode = _json.JSONDecoder().raw_decode  # orjson decodes no prefix of a text: arrays are framed here


def iter_values(fh: TextIO, *, envelope: str | None = None) -> Iterator[Any]:
    """The records of a JSON text, read from ``fh`` as a stream.

    A top-level array yields its elements one at a time; anything else is read as
    JSON lines (one value per line, blank lines skipped). With ``envelope`` (e.g.
    ``"items"``), a text that is one object (on one line or spread over many)
    whose ``envelope`` member is a list yields that list's elements instead; such
    an object is read whole. Otherwise memory holds one value plus one read chunk.
    ``ValueError`` naming the character or line on malformed input.
    """
    head, number = _first_character(fh)
    if not head:
        return
    if head == "[":
        yield from _TextReader(fh, head).array()
        return
    line = head + fh.readline()
    try:
        first = loads(line)
    except ValueError as exc:
        if envelope is None:
            raise _line_error(number, exc) from None
        first, following = _TextReader(fh, line).document(), None  # one document spread over several lines
    else:
        lines = enumerate(fh, number + 1)
        following = next(((n, text) for n, text in lines if text.strip()), None)
    if following is None and envelope is not None:
        yield from _unwrap(first, envelope)
        return
    yield first
    if following is None:
        return
    for number, line in _chain((following,), lines):
        try:
            value = loads(line)
        except ValueError as exc:
            if line.strip():
                raise _line_error(number, exc) from None
            continue
        yield value


def _first_character(fh: TextIO) -> tuple[str, int]:
    """The first non-blank character ("" if there is none) and the number of its line.

    Read one at a time, so that JSON lines can go on with the stream's own line reading.
    """
    number = 1
    while True:
        char = fh.read(1)
        if not char or char not in _BLANK:
            return char, number
        if char == "\n":
            number += 1


def _unwrap(value: Any, envelope: str) -> Iterator[Any]:
    items = value.get(envelope) if isinstance(value, dict) else None
    if isinstance(items, list):
        yield from items
    else:
        yield value


def _line_error(number: int, exc: ValueError) -> ValueError:
    return ValueError(f"line {number} is not JSON: {str(exc)[:80]}")


class _TextReader:
    """A read buffer over a text stream, for values that may span many reads (array elements, a document)."""

    def __init__(self, fh: TextIO, start: str) -> None:
        self.fh = fh
        self.buf = start
        self.pos = 0
        self.consumed = 0  # characters dropped from the front of ``buf``
        self.eof = False

    @property
    def offset(self) -> int:
        """Characters read before the current position (after the text's leading blanks)."""
        return self.consumed + self.pos

    def _more(self, size: int = _CHUNK) -> bool:
        """Append the next read to the buffer (dropping what is behind ``pos``); False at the end."""
        if self.eof:
            return False
        data = self.fh.read(size)
        if not data:
            self.eof = True
            return False
        self.consumed += self.pos
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def peek(self) -> str | None:
        """The next non-blank character (not consumed), or None at the end."""
        while True:
            buf, pos = self.buf, self.pos
            if pos < len(buf):
                if buf[pos] not in _BLANK:
                    return buf[pos]
                self.pos = pos = _BLANKS.match(buf, pos).end()  # type: ignore[union-attr]
                if pos < len(buf):
                    return buf[pos]
            if not self._more():
                return None

    def value(self) -> Any:
        """The JSON value at the current position; reads more (doubling the read size) until it is complete."""
        self.peek()
        size = _CHUNK
        while True:
            try:
                value, end = _raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:  # a number at the end of the buffer may go on
                    self.pos = end
                    return value
            except _json.JSONDecodeError as exc:
                if self.eof:
                    raise ValueError(f"malformed JSON at character {self.consumed + exc.pos}: {exc.msg}") from None
            self._more(size)
            size *= 2

    def document(self) -> Any:
        """The value at the current position, which must be the last thing in the text."""
        value = self.value()
        if self.peek() is not None:
            raise ValueError(f"unexpected data after the first value at character {self.offset}")
        return value

    def array(self) -> Iterator[Any]:
        """The elements of the array whose ``[`` is next; nothing but blanks may follow it."""
        self.pos += 1
        if self.peek() == "]":
            self.pos += 1
        else:
            while True:
                yield self.value()
                sep = self.peek()
                if sep is None:
                    raise ValueError("the array is not closed")
                self.pos += 1
                if sep == "]":
                    break
                if sep != ",":
                    raise ValueError(f"expected ',' or ']' at character {self.offset - 1}")
        if self.peek() is not None:
            raise ValueError(f"unexpected data after the array at character {self.offset}")
