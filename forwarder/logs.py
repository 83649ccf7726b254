"""Logging set-up: text or JSON lines, with every known secret redacted at every level.

Structured fields: a call passes ``extra=fields(source=..., events=...)`` and the
JSON format writes each field as a key of its own (``FIELDS``), besides the
rendered ``message``; the text format shows the message only.

``[log] file`` writes to a file instead of standard error. With ``max_bytes = 0``
(the default) the file is reopened when it is moved away, so ``logrotate`` (with
``create``, not ``copytruncate``) rotates it; with ``max_bytes > 0`` the forwarder
rotates it itself, keeping ``backups`` old files (``file.1`` … ``file.N``).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

from forwarder import jsoncodec
from forwarder.secrets import redact
from forwarder.timeutil import format_time, now

#: Keys a log call may pass as structured fields (``extra=fields(...)``).
FIELDS = ("source", "vendor", "sink", "events", "delivered", "dead_letters", "pages", "cursor", "duration", "error")


def fields(**values: Any) -> dict[str, Any]:
    """Structured fields for ``extra=``; only the known keys, None values left out."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields {sorted(unknown)} (known: {FIELDS})")
    return {k: v for k, v in values.items() if v is not None}


class RedactingFilter(logging.Filter):
    """Renders the message once and masks secrets in it, in exception text and in string fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        for key in FIELDS:
            value = record.__dict__.get(key)
            if isinstance(value, str):
                record.__dict__[key] = redact(value)
            elif isinstance(value, dict):
                record.__dict__[key] = jsoncodec.loads(redact(jsoncodec.dumps_str(value)))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": format_time(now()),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                doc[key] = record.__dict__[key]
        if record.exc_text:
            doc["exception"] = record.exc_text
        return jsoncodec.dumps_str(doc)


def _file_handler(file: str, max_bytes: int, backups: int) -> logging.Handler:
    if max_bytes > 0:
        return logging.handlers.RotatingFileHandler(file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", errors="backslashreplace")
    # A vendor's text in a message (even a lone surrogate) must not break the log line.
    return logging.handlers.WatchedFileHandler(file, encoding="utf-8", errors="backslashreplace")


def setup_logging(
    level: str = "info",
    fmt: str = "text",
    file: str | None = None,
    max_bytes: int = 0,
    backups: int = 5,
    handler: logging.Handler | None = None,
) -> None:
    """Configure the ``forwarder`` logger (idempotent).

    ``handler`` replaces the file or standard-error handler and keeps its own format
    (the Splunk add-on passes solnlib's rotating file handler); secrets are masked all the same.
    """
    logger = logging.getLogger("forwarder")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        if old is not handler:
            old.close()
    if handler is None:
        if file:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler = _file_handler(str(file), max_bytes, backups) if file else logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
