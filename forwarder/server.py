"""The optional HTTP listener: ``/metrics``, ``/healthz`` and ``/readyz``.

``/metrics`` is the Prometheus text format of ``forwarder.metrics``. ``/healthz``
answers 200 while the process serves requests. ``/readyz`` answers 200 once a
configuration is loaded and every sink's last check or delivery succeeded, else
503 with a JSON body listing what is wrong. Off unless ``[server] listen`` or
``run --listen`` names an address; bind it to 127.0.0.1 unless a scraper on
another host needs it (the endpoints carry no secrets, but no auth either).
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from forwarder import jsoncodec, metrics
from forwarder.errors import ConfigError

# What ``prometheus_client.generate_latest`` writes: the classic text format.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]*)):(?P<port>[0-9]{1,5})$")


def parse_listen(value: str, key: str = "server.listen") -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``:port`` for every interface) as (host, port)."""
    m = _LISTEN.match(value.strip()) if isinstance(value, str) else None
    port = int(m.group("port")) if m else -1
    if m is None or not 0 <= port <= 65535:
        raise ConfigError(key, f"{value!r} is not host:port (e.g. 127.0.0.1:9464)")
    return (m.group("v6") or m.group("host") or "0.0.0.0"), port


class _Handler(BaseHTTPRequestHandler):
    server: "_HttpServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, metrics.exposition(), METRICS_CONTENT_TYPE)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            problems = self.server.owner.problems()
            body = jsoncodec.dumps({"ready": not problems, "problems": problems}) + b"\n"
            self._send(503 if problems else 200, body, "application/json")
        else:
            self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Scrapes are not worth a log line each."""


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: "StatusServer"


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class StatusServer:
    """Serves the endpoints from a background thread until ``close``."""

    def __init__(self, listen: str) -> None:
        host, port = parse_listen(listen)
        self._sinks: list[str] | None = None
        self._lock = threading.Lock()
        try:
            self._http = (_HttpServer6 if ":" in host else _HttpServer)((host, port), _Handler)
        except OSError as exc:
            raise ConfigError("server.listen", f"cannot listen on {listen}: {exc.strerror or exc}") from None
        self._http.owner = self
        self._thread = threading.Thread(target=self._http.serve_forever, name="status-server", daemon=True)

    @property
    def url(self) -> str:
        """Base URL (with the port actually bound)."""
        host, port = self._http.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in str(host) else host}:{port}"

    def start(self) -> "StatusServer":
        """Begin serving."""
        self._thread.start()
        return self

    def configured(self, sinks: list[str]) -> None:
        """A configuration with these sinks is loaded (readiness now depends on them)."""
        with self._lock:
            self._sinks = list(sinks)

    def problems(self) -> list[str]:
        """Why the forwarder is not ready (empty when it is)."""
        with self._lock:
            sinks = self._sinks
        if sinks is None:
            return ["configuration not loaded yet"]
        status = metrics.sink_problems()
        out = []
        for sink in sinks:
            if sink not in status:
                out.append(f"sink {sink}: not checked or used yet")
            elif status[sink]:
                out.append(f"sink {sink}: {status[sink]}")
        return out

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._http.shutdown()
        self._http.server_close()
