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

from forwarder.errors import UnreadableRecord

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
        """Compact UTF-8 JSON (any depth, lone surrogates escaped, integers of any size).

        Keys are nearly always strings, and orjson is a third slower when told they may
        not be: that option is only used when a first attempt without it fails.
        """
        try:
            return _orjson.dumps(obj, default=_default)
        except TypeError:  # orjson.JSONEncodeError: a non-string key, too deep, a lone surrogate, a huge int...
            return _retry(obj, 0)

    def canonical(obj: Any) -> bytes:
        """Compact JSON with sorted keys: stable input for hashing."""
        try:
            return _orjson.dumps(obj, default=_default, option=_SORT)
        except TypeError:
            return _retry(obj, _SORT)

    def _retry(obj: Any, option: int) -> bytes:
        """What the first try refused: non-string keys written as text, else the pure-Python encoder."""
        try:
            return _orjson.dumps(obj, default=_default, option=option | _NONSTR)
        except TypeError:
            return _encode(obj, sort_keys=bool(option & _SORT))

    def loads(data: bytes | bytearray | memoryview | str) -> Any:
        """Parse JSON; raises ValueError on bad input.

        What orjson refuses although it is valid JSON (a lone ``\\ud800`` escape,
        an integer beyond 64 bits) is read by the standard library instead, so one
        such record does not make the page that carries it unreadable.
        """
        try:
            return _orjson.loads(data)
        except ValueError as exc:
            return _loads_std(data, exc)

else:  # pragma: no cover

    def dumps(obj: Any) -> bytes:
        """Compact UTF-8 JSON (any depth, lone surrogates escaped, integers of any size)."""
        try:
            return _json.dumps(obj, default=_default, separators=(",", ":"), ensure_ascii=False).encode()
        except (UnicodeEncodeError, RecursionError):
            return _encode(obj, sort_keys=False)

    def canonical(obj: Any) -> bytes:
        """Compact JSON with sorted keys: stable input for hashing."""
        try:
            return _json.dumps(
                obj, default=_default, separators=(",", ":"), ensure_ascii=False, sort_keys=True
            ).encode()
        except (UnicodeEncodeError, RecursionError):
            return _encode(obj, sort_keys=True)

    def loads(data: bytes | bytearray | memoryview | str) -> Any:
        """Parse JSON; raises ValueError on bad input."""
        return _loads_std(data, None)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads_std(data: bytes | bytearray | memoryview | str, first: ValueError | None) -> Any:
    """The standard library's reading of ``data`` (``_decode_deep`` past its nesting limit);
    ``first`` (orjson's complaint) if it refuses too."""
    try:
        text = bytes(data).decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        try:
            return _json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            value, end = _decode_deep(text, _BLANKS.match(text).end())  # type: ignore[union-attr]
            if _BLANKS.match(text, end).end() != len(text):  # type: ignore[union-attr]
                raise ValueError(f"unexpected data after the value at character {end}") from None
            return value
    except ValueError:
        if first is not None:
            raise first from None
        raise


#: Deepest nesting read at all: deeper is refused (memory), whatever reads it.
MAX_DEPTH = 100_000
_NUMBER = _re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"true": True, "false": False, "null": None}
_scanstring = _json.decoder.scanstring  # type: ignore[attr-defined]


def _decode_deep(text: str, pos: int) -> tuple[Any, int]:
    """The JSON value at ``pos`` and where it ends, read without recursion: for nesting deeper
    than the C readers take (orjson 1024 levels, the stdlib the recursion limit). Slower;
    only used for such values. ``json.JSONDecodeError`` on bad or incomplete text."""
    open_: list[list[Any]] = []  # [container, key of the value being read (objects)]

    def blank(at: int) -> int:
        return _BLANKS.match(text, at).end()  # type: ignore[union-attr]

    def key(at: int) -> tuple[str, int]:
        if text[at:at + 1] != '"':
            raise _json.JSONDecodeError("expected a string key", text, at)
        name, at = _scanstring(text, at + 1, True)
        at = blank(at)
        if text[at:at + 1] != ":":
            raise _json.JSONDecodeError("expected ':'", text, at)
        return name, blank(at + 1)

    while True:
        pos = blank(pos)
        char = text[pos:pos + 1]
        if char in ("{", "["):
            if len(open_) >= MAX_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels at character {pos}")
            pos = blank(pos + 1)
            if text[pos:pos + 1] == ("}" if char == "{" else "]"):
                value: Any = {} if char == "{" else []
                pos += 1
            elif char == "{":
                name, pos = key(pos)
                open_.append([{}, name])
                continue
            else:
                open_.append([[], None])
                continue
        elif char == '"':
            value, pos = _scanstring(text, pos + 1, True)
        elif (number := _NUMBER.match(text, pos)) is not None:
            pos = number.end()
            value = float(number.group()) if number.group(1) or number.group(2) else int(number.group())
        else:
            word = next((w for w in _LITERALS if text.startswith(w, pos)), None)
            if word is None:
                raise _json.JSONDecodeError("expected a JSON value", text, pos)
            value, pos = _LITERALS[word], pos + len(word)
        while True:  # hand the value to its container, closing those that end here
            if not open_:
                return value, pos
            container, name = open_[-1]
            if isinstance(container, list):
                container.append(value)
            else:
                container[name] = value
            pos = blank(pos)
            char = text[pos:pos + 1]
            if char == ",":
                pos = blank(pos + 1)
                if isinstance(container, dict):
                    open_[-1][1], pos = key(pos)
                break
            if char != ("]" if isinstance(container, list) else "}"):
                raise _json.JSONDecodeError("expected ',' or a closing bracket", text, pos)
            pos += 1
            open_.pop()
            value = container


class _Raw(str):
    """Text already encoded, waiting on ``_encode``'s stack."""


_SURROGATE = _re.compile("[\ud800-\udfff]")
_encode_string = _json.encoder.encode_basestring  # type: ignore[attr-defined]


def _string(text: str) -> str:
    """A JSON string literal; a lone surrogate becomes its ``\\uXXXX`` escape (valid JSON, valid UTF-8)."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", _encode_string(text))


def _key(key: Any) -> str:
    """An object key as text, the way orjson's OPT_NON_STR_KEYS writes it."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return _scalar(key).strip('"')
    if isinstance(key, _dt.datetime):
        return key.isoformat()
    raise TypeError(f"cannot encode a {type(key).__name__} key as JSON")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if value != value or value in (float("inf"), float("-inf")):
        return "null"  # as orjson writes NaN and infinities
    return repr(float(value))


def _encode(obj: Any, *, sort_keys: bool) -> bytes:
    """What orjson cannot write, written without recursion: nesting of any depth, lone
    surrogates escaped, integers beyond 64 bits. Slower, and only used for such values."""
    out: list[str] = []
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        if type(value) is _Raw:
            out.append(value)
        elif isinstance(value, str):
            out.append(_string(value))
        elif value is None or isinstance(value, (bool, int, float)):
            out.append(_scalar(value))
        elif isinstance(value, dict):
            items = [(_key(k), v) for k, v in value.items()]
            if sort_keys:
                items.sort(key=lambda item: item[0])
            seq: list[Any] = [_Raw("{")]
            for n, (k, v) in enumerate(items):
                seq += [_Raw(("," if n else "") + _string(k) + ":"), v]
            seq.append(_Raw("}"))
            stack.extend(reversed(seq))
        elif isinstance(value, list):
            seq = [_Raw("[")]
            for n, v in enumerate(value):
                seq += [_Raw(","), v] if n else [v]
            seq.append(_Raw("]"))
            stack.extend(reversed(seq))
        else:
            stack.append(_default(value))
    return "".join(out).encode()


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
    JSON lines (one value per line, blank lines skipped; a later line that is not JSON
    is yielded as an ``UnreadableRecord``, so one bad record does not end the stream). With ``envelope`` (e.g.
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
                yield UnreadableRecord(str(_line_error(number, exc)), line.rstrip("\r\n"))
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
                try:
                    value, end = _raw_decode(self.buf, self.pos)
                except RecursionError:
                    value, end = _decode_deep(self.buf, self.pos)
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
