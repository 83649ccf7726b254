"""Logstash sink: ECS documents as NDJSON POSTs to a Logstash ``http`` input.

Pairs with ``logstash/forwarder-http.conf`` (``json_lines`` codec). What a
``200`` means there: the events are in Logstash's pipeline queue, not yet in
Elasticsearch — use ``queue.type: persisted`` in Logstash for at-least-once.

- Batches are split so that no request body exceeds ``batch_bytes`` before
  compression (Logstash's ``max_content_length`` applies after decompression);
  every line ends with ``\\n``.
- ``429`` (worker blocked on a full pipeline queue, or too many pending
  requests), ``5xx`` and connection errors are retried with jittered backoff by
  ``forwarder.http``. A client timeout is retried too: Logstash may still
  process the first copy, and the pipeline's ``document_id`` turns the replay
  into a no-op in Elasticsearch.
- ``413`` halves the request until it fits; a single event that still does not
  fit is returned as rejected (dead-lettered).
- Only ``200`` with the body ``ok`` counts as accepted: anything else answering
  200 (a proxy's error page, a different service) is not a Logstash http input,
  and the batch fails rather than being lost there.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from forwarder import compression, jsoncodec
from forwarder.auth.basic import BasicAuth
from forwarder.config import SinkConfig
from forwarder.ecs import to_ecs
from forwarder.errors import ConfigError, HttpError, SinkError
from forwarder.event import AuditEvent
from forwarder.http import HttpClient, safe_url
from forwarder.options import Option, address_problem, require_tls
from forwarder.sinks.base import Rejected, Sink

log = logging.getLogger("forwarder.sinks.logstash")

CONTENT_TYPE = "application/x-ndjson"
GZIP_LEVEL = 1  # bench/bench_logstash.py: level 1 keeps most of the size gain at a fraction of level 6's cost


def _check_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL of the Logstash http input"
    if parts.username or parts.password:
        return "must not contain credentials (use user and password)"
    return address_problem(value)


class LogstashSink(Sink):
    """POST ECS NDJSON to a Logstash ``http`` input."""

    TYPE = "logstash"
    OPTIONS = {
        "url": Option("str", help="Logstash http input URL, e.g. https://logstash.example:8443/", check=_check_url),
        "user": Option("str", None, "HTTP Basic user (the input's user setting)"),
        "password": Option("secret", None, "HTTP Basic password: env:NAME or file:PATH"),
        "namespace": Option("str", "default", "data_stream.namespace written into each document"),
        "batch_bytes": Option("int", 5 * 1024 * 1024, "largest request body before compression", minimum=1024),
        "compress": Option("bool", True, "gzip request bodies"),
        "allow_insecure_http": Option("bool", False, "accept plain http:// to a non-loopback host (credentials and events then travel in clear)"),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any], where: str) -> None:
        """user and password come together; no cleartext http to another host unless opted in."""
        if (options["user"] is None) != (options["password"] is None):
            missing = "password" if options["password"] is None else "user"
            raise ConfigError(f"{where}.{missing}", "is required when the other of user/password is set")
        require_tls([options["url"]], options["allow_insecure_http"], f"{where}.url")

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.url: str = self.options["url"]
        self.namespace: str = self.options["namespace"]
        self.batch_bytes: int = self.options["batch_bytes"]
        self.compress: bool = self.options["compress"]
        auth = None
        if self.options["user"] is not None:
            auth = BasicAuth(self.options["user"], self.options["password"])
        self.http = HttpClient(f"logstash sink {self.name}", config.http, auth=auth)

    def send(self, events: list[AuditEvent]) -> list[Rejected]:
        """Deliver ``events`` in byte-capped requests; return the ones too large for Logstash."""
        ns = self.namespace
        dumps = jsoncodec.dumps
        lines = [dumps(to_ecs(e, ns)) + b"\n" for e in events]
        rejected: list[Rejected] = []
        start = size = 0
        for i, line in enumerate(lines):
            if i > start and size + len(line) > self.batch_bytes:
                self._deliver(events[start:i], lines[start:i], rejected)
                start, size = i, 0
            size += len(line)
        if start < len(lines):
            self._deliver(events[start:], lines[start:], rejected)
        return rejected

    def _deliver(self, events: list[AuditEvent], lines: list[bytes], rejected: list[Rejected]) -> None:
        """POST one request; on 413 split it in halves, down to single events."""
        try:
            self._post(b"".join(lines))
        except HttpError as exc:
            if exc.status != 413:
                raise
            if len(lines) == 1:
                rejected.append(Rejected(events[0], f"Logstash refused the event as too large (HTTP 413, {len(lines[0])} bytes over its max_content_length)"))
                return
            half = len(lines) // 2
            log.info("sink %s: HTTP 413 for %d events; splitting the request", self.name, len(lines))
            self._deliver(events[:half], lines[:half], rejected)
            self._deliver(events[half:], lines[half:], rejected)

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": CONTENT_TYPE}
        if self.compress and body:
            body = compression.gzip(body, GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        try:
            resp = self.http.request("POST", self.url, ok=(200,), data=body, headers=headers)
        except HttpError as exc:
            if exc.status in (201, 202, 204):
                raise SinkError(
                    f"sink {self.name}: Logstash answered HTTP {exc.status}; set response_code => 200 on its http input "
                    "(the events are re-sent, and the event id keeps Elasticsearch free of duplicates)"
                ) from None
            raise
        if resp.content.strip() != b"ok":
            raise SinkError(
                f"sink {self.name}: {safe_url(self.url)} answered 200 without the Logstash http input's 'ok' body; "
                "is the URL pointing at Logstash?"
            )

    def check(self) -> str:
        """POST an empty NDJSON body: proves reachability, TLS and credentials, and decodes to no event."""
        self._post(b"")
        return f"Logstash http input at {safe_url(self.url)} accepts our requests"

    def close(self) -> None:
        """Release pooled connections."""
        self.http.close()

