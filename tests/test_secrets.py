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


# -- every wire form of a credential is redacted ----------------------------------------------

import base64  # noqa: E402
import json  # noqa: E402
from collections import deque  # noqa: E402
from urllib.parse import quote, quote_plus  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from forwarder import secrets  # noqa: E402
from forwarder.secrets import api_key_credentials, basic_credentials  # noqa: E402


@pytest.fixture
def own_registry(monkeypatch):
    """This test's secrets only: the process-wide registry is put back afterwards."""
    monkeypatch.setattr(secrets, "_known", set())
    monkeypatch.setattr(secrets, "_recent", deque(maxlen=256))
    monkeypatch.setattr(secrets, "_ordered", ())


def wire_forms(user, password, key_id, token):
    """Each form the credentials take in a request, after registering them the way the code does."""
    raw = Secret(password)
    basic = basic_credentials(user, raw).reveal()
    pair = f"{key_id}:{password}"
    encoded = api_key_credentials(Secret(pair)).reveal()
    pre_encoded = base64.b64encode(pair.encode()).decode()
    api_key_credentials(Secret(pre_encoded))
    Secret(token, transient=True)
    return [
        password, quote(password, safe=""), quote_plus(password), json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1], basic, f"Basic {basic}", encoded, f"ApiKey {encoded}",
        pair, pre_encoded, f"Bearer {token}", token,
    ]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    user=st.text(min_size=1, max_size=20).filter(lambda u: ":" not in u),
    password=st.text(min_size=4, max_size=40),
    key_id=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20),
    token=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~+/", min_size=8, max_size=40),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_no_wire_form_of_a_credential_survives_redaction(own_registry, user, password, key_id, token, before, after):
    forms = wire_forms(user, password, key_id, token)
    echoed = before + " ".join(f"{f}{after}" for f in forms) + before
    out = redact(echoed)
    for form in forms:
        assert form not in out


def test_an_authorization_value_never_registered_is_masked_too(own_registry):
    # a per-request HMAC signature (Crusoe) or a header from some other client
    text = 'echo: {"Authorization": "Bearer 1.0:AKID123:Zm9vYmFyYmF6cXV4", "x": "Basic authentication"}'
    assert redact(text) == 'echo: {"Authorization": "Bearer ***", "x": "Basic authentication"}'


def test_a_forwarder_error_is_redacted_whenever_it_is_rendered(own_registry):
    from forwarder.errors import SourceError

    Secret("late-registered-secret-42")
    assert str(SourceError("body said late-registered-secret-42")) == "body said ***"


def test_remembered_secrets_do_not_leak_between_tests_part_one():
    secrets.register("reference")
    assert secrets.redact("a reference") == "a ***"


def test_remembered_secrets_do_not_leak_between_tests_part_two():
    # a secret remembered by another test used to mask ordinary words here ("must be a *** reference")
    assert secrets.redact("a reference") == "a reference"
