"""All JSON encoding and decoding goes through here.

orjson is used when it is installed (it is a dependency of the package); inside
Splunk's own Python, where no compiled wheel may ship, the standard library takes
over with the same results: compact separators, UTF-8 bytes, sorted keys for the
canonical form.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
from typing import Any

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
