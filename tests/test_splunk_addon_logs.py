"""The add-on's own log: solnlib's rotating logger carries the engine's (redacted) lines, and the
props stanza of sourcetype siem_forwarder:log breaks, timestamps and extracts them."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pytest

from forwarder.logs import setup_logging
from forwarder.secrets import Secret
from forwarder.splunk_addon import CONF_PREFIX, log_name

solnlib_log = pytest.importorskip("solnlib.log", reason="solnlib comes with the dev extra")

PROPS = Path(__file__).resolve().parent.parent / "splunk_app" / "package" / "default" / "props.conf"


def stanza(name: str) -> dict[str, str]:
    text = PROPS.read_text()
    body = text.split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]
    return dict(line.split(" = ", 1) for line in body.splitlines() if line and not line.startswith("#"))


def splunk_regex(pattern: str) -> re.Pattern:
    return re.compile(pattern.replace("(?<", "(?P<"))


def break_events(text: str, breaker: re.Pattern) -> list[str]:
    """Splunk's LINE_BREAKER: the first group is the delimiter and is dropped; the rest starts the next event."""
    events, pos = [], 0
    for m in breaker.finditer(text):
        events.append(text[pos:m.start(1)])
        pos = m.end(1)
    events.append(text[pos:])
    return [e for e in events if e.strip()]


@pytest.fixture
def input_log(tmp_path):
    solnlib_log.Logs.set_context(directory=str(tmp_path), namespace=CONF_PREFIX)
    handler = solnlib_log.Logs().get_logger(log_name("crusoe://prod eu")).handlers[0]
    setup_logging("info", "text", handler=handler)
    yield Path(handler.baseFilename)
    setup_logging("warning")
    handler.close()


def test_engine_lines_reach_solnlibs_rotating_file_redacted(input_log):
    secret = Secret("addon-secret-value-123")
    log = logging.getLogger("forwarder.splunk_addon")
    log.info("pass done with %s", secret.reveal())
    try:
        raise ValueError(f"bad {secret.reveal()}")
    except ValueError:
        log.exception("failed")
    assert input_log.name == "ta_siem_forwarder_crusoe___prod_eu.log"
    assert isinstance(logging.getLogger("forwarder").handlers[0], logging.handlers.RotatingFileHandler)
    text = input_log.read_text()
    assert "addon-secret-value-123" not in text and "pass done with" in text

    props = stanza("siem_forwarder:log")
    assert stanza("source::...ta_siem_forwarder_*.log*") == {"sourcetype": "siem_forwarder:log"}
    breaker = splunk_regex(props["LINE_BREAKER"])
    events = break_events(text, breaker)
    assert len(events) == 2  # the traceback stays with its line
    extract = splunk_regex(props["EXTRACT-siem_forwarder_log"])
    first = extract.match(events[0])
    assert first and first["log_level"] == "INFO" and first["log_message"].startswith("pass done with")
    assert extract.match(events[1])["log_level"] == "ERROR" and "Traceback" in events[1]
    stamp = events[0][: int(props["MAX_TIMESTAMP_LOOKAHEAD"])]
    parsed = dt.datetime.strptime(stamp, props["TIME_FORMAT"].replace("%3N", "%f"))
    assert abs((dt.datetime.now() - parsed).total_seconds()) < 3600
