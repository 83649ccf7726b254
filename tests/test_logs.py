"""Operator logs: structured JSON fields, a log file that follows logrotate or rotates by size."""

from __future__ import annotations

import logging

import pytest

from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.logs import fields, setup_logging
from forwarder.runner import run_once
from forwarder.secrets import Secret
from tests.simulated import crusoe_demo, file_config


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "forwarder.log"
    yield path
    setup_logging("warning")  # release the file


def records(path):
    return [jsoncodec.loads(line) for line in path.read_text().splitlines()]


def test_a_pass_logs_its_fields_as_keys(tmp_path, log_file, monkeypatch):
    setup_logging("debug", "json", str(log_file))
    with crusoe_demo(50, monkeypatch, seed=4) as sim:
        run_once(file_config(tmp_path, [sim.table]))
    passes = [r for r in records(log_file) if r.get("source") == "crusoe-demo"]
    assert len(passes) == 1
    line = passes[0]
    assert line["vendor"] == "crusoe" and line["events"] == 50 and line["dead_letters"] == 0
    assert line["cursor"]["until"] and isinstance(line["duration"], float)
    assert "error" not in line
    assert line["message"].startswith("source crusoe-demo: 50 events")
    assert sim.env["FORWARDER_DEMO_CRUSOE_SECRET_KEY"] not in log_file.read_text()


def test_secrets_in_fields_are_redacted(log_file):
    secret = Secret("s3cr3t-value-for-fields")
    setup_logging("info", "json", str(log_file))
    logging.getLogger("forwarder.test").error(
        "failed", extra=fields(sink="hec", error=f"bad token {secret.reveal()}", cursor={"k": secret.reveal()})
    )
    text = log_file.read_text()
    assert "s3cr3t-value-for-fields" not in text
    (line,) = records(log_file)
    assert line["sink"] == "hec" and line["error"].startswith("bad token ")


def test_unknown_field_is_a_bug_caught_early():
    with pytest.raises(ValueError, match="unknown log fields"):
        fields(password="x")


def test_text_format_keeps_the_message_only(log_file):
    setup_logging("info", "text", str(log_file))
    logging.getLogger("forwarder.test").info("hello", extra=fields(source="a", events=3))
    assert log_file.read_text().rstrip().endswith("INFO forwarder.test: hello")


def test_log_file_is_reopened_after_logrotate_moves_it(log_file):
    setup_logging("info", "json", str(log_file))
    log = logging.getLogger("forwarder.test")
    log.info("before")
    log_file.rename(log_file.with_suffix(".log.1"))  # what logrotate does (with `create`)
    log.info("after")
    assert [r["message"] for r in records(log_file.with_suffix(".log.1"))] == ["before"]
    assert [r["message"] for r in records(log_file)] == ["after"]


def test_log_file_rotates_by_size(log_file):
    setup_logging("info", "json", str(log_file), max_bytes=300, backups=2)
    log = logging.getLogger("forwarder.test")
    for i in range(40):
        log.info("line %d", i)
    files = sorted(p.name for p in log_file.parent.glob("forwarder.log*"))
    assert files == ["forwarder.log", "forwarder.log.1", "forwarder.log.2"]
    assert all(p.stat().st_size <= 300 for p in log_file.parent.glob("forwarder.log*"))
    assert records(log_file)[-1]["message"] == "line 39"


def test_log_rotation_options_are_validated():
    assert parse_config({"log": {"max_bytes": 1000, "backups": 3}}).log["backups"] == 3
    with pytest.raises(Exception, match="log.max_bytes"):
        parse_config({"log": {"max_bytes": -1}})
