import logging

import pytest

from forwarder.errors import ConfigError
from forwarder.logs import setup_logging
from forwarder.secrets import Secret, redact, resolve


def test_env_and_file_refs(tmp_path, monkeypatch):
    monkeypatch.setenv("FWD_TEST_SECRET", "s3cr3t-env-value")
    assert resolve("env:FWD_TEST_SECRET", "k").reveal() == "s3cr3t-env-value"
    f = tmp_path / "s"
    f.write_text("file-secret-value\n")
    assert resolve(f"file:{f}", "k").reveal() == "file-secret-value"


def test_secret_never_prints():
    s = Secret("hunter2-very-secret")
    assert "hunter2" not in str(s) and "hunter2" not in repr(s) and "hunter2" not in f"{s} {s!r}"


@pytest.mark.parametrize("ref, words", [
    ("env:FWD_NOT_SET_ANYWHERE", "FWD_NOT_SET_ANYWHERE is not set"),
    ("file:/nonexistent/secret", "cannot read secret file"),
    ("plain-literal-secret", "literal values are not accepted"),
    (123, "must be a secret reference"),
])
def test_bad_refs_name_the_key_not_the_value(ref, words):
    with pytest.raises(ConfigError) as info:
        resolve(ref, 'source "x".api_key')
    msg = str(info.value)
    assert 'source "x".api_key' in msg and words in msg
    assert "plain-literal-secret" not in msg


def test_logs_redact_secrets_at_every_level(tmp_path):
    s = Secret("do-not-log-me-1234")
    log_file = tmp_path / "log.txt"
    setup_logging("debug", "json", str(log_file))
    logger = logging.getLogger("forwarder.test")
    logger.debug("token is %s", s.reveal())
    try:
        raise RuntimeError(f"failed with {s.reveal()}")
    except RuntimeError:
        logger.exception("boom")
    text = log_file.read_text()
    assert "do-not-log-me-1234" not in text
    assert "***" in text and "boom" in text
    assert redact("x do-not-log-me-1234 y") == "x *** y"


def test_transient_values_are_bounded_but_configured_ones_stay():
    Secret("configured-secret-777")
    for i in range(300):
        Secret(f"short-lived-token-{i:04d}", transient=True)
    assert redact("configured-secret-777") == "***"
    assert redact("short-lived-token-0299") == "***"
    assert redact("short-lived-token-0000") == "short-lived-token-0000"  # aged out: it expired long ago
