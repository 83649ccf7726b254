"""Hostile vendor records for tests: hypothesis strategies and a tiny server that answers with them.

``PageServer`` listens on 127.0.0.1 (ephemeral port) and answers every request through
one function the test sets, ``(method, path, body) -> (status, JSON value or bytes)``.
It checks no credentials: it stands for a vendor that sends odd records, not for its auth.
It writes JSON with the standard library (lone surrogates as ``\\ud800`` escapes), never
with the code under test.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from hypothesis import strategies as st


Route = Callable[[str, str, bytes], tuple[int, Any]]

#: Values that broke sources before: overflowing times, lone surrogates, odd types.
NASTY = [
    1e300, -1e300, "99999999999999999999", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "\ud800", "a\udfffb", {"a": 1}, [None], 2**70, -(2**70), True, "", "1969-12-31T23:59:59Z", 0,
]


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep (orjson reads 1024, writes 254)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(NASTY)
)
json_values = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=6,
) | st.integers(250, 900).map(nested)  # the stdlib writes up to ~990 levels


def recent_times(start: dt.datetime, end: dt.datetime) -> st.SearchStrategy[str]:
    """Valid RFC 3339 times inside ``[start, end)``."""
    span = int((end - start).total_seconds()) - 1
    return st.integers(0, span).map(lambda s: (start + dt.timedelta(seconds=s)).isoformat().replace("+00:00", "Z"))


def records(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A record with each field either plausible or any JSON value (or absent); sometimes no object at all."""
    shaped = st.fixed_dictionaries({}, optional={name: plausible | json_values for name, plausible in fields.items()})
    return st.one_of(shaped, shaped, shaped, json_values)



class PageServer:
    """A loopback HTTP server answering through ``self.route``."""

    def __init__(self) -> None:
        self.route: Route = lambda method, path, body: (404, {"message": "no route"})
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path))
                status, payload = server.route(self.command, self.path, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "PageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
