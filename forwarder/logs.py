"""Logging set-up: text or JSON lines, with every known secret redacted at every level."""

from __future__ import annotations

import logging
import sys
from typing import Any

from forwarder import jsoncodec
from forwarder.secrets import redact
from forwarder.timeutil import format_time, now


class RedactingFilter(logging.Filter):
    """Renders the message once and masks secrets in it (and in exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": format_time(now()),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            doc["exception"] = record.exc_text
        return jsoncodec.dumps_str(doc)


def setup_logging(level: str = "info", fmt: str = "text", file: str | None = None) -> None:
    """Configure the ``forwarder`` logger (idempotent)."""
    logger = logging.getLogger("forwarder")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    # A vendor's text in a message (even a lone surrogate) must not break the log line.
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8", errors="backslashreplace") if file else logging.StreamHandler(sys.stderr)
    )
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
