"""OAuth2 client credentials (forwarder.auth.oauth2) against the GreenLake simulator's token endpoints."""

from __future__ import annotations

import pytest
import requests

from forwarder.auth.bearer import DEFAULT_LIFETIME
from forwarder.auth.oauth2 import OAuth2ClientCredentials
from forwarder.errors import AuthError
from forwarder.http import HttpSettings
from forwarder.secrets import Secret, redact
from forwarder.simulators.base import Faults, Response, Simulator
from forwarder.simulators.hpe_greenlake import GreenLakeSimulator
from tests.fakeclock import FakeClock

FAST = HttpSettings(backoff_base=0.01, backoff_max=0.05, retries=8)


@pytest.fixture(scope="module")
def sim():
    with GreenLakeSimulator(per_hour=0, faults=Faults(token_ttl=7199)) as s:
        yield s


def client_of(sim: GreenLakeSimulator):
    ws = next(iter(sim.workspaces.values()))
    return sim.add_client(ws.id)


def workspace_auth(sim: GreenLakeSimulator, client, secret: str | None = None, **kw) -> OAuth2ClientCredentials:
    url = f"{sim.url}/authorization/v2/oauth2/{client.workspace.id}/token"
    return OAuth2ClientCredentials(url, client.id, Secret(secret or client.secret), settings=FAST, **kw)


def api_ok(sim: GreenLakeSimulator, auth: OAuth2ClientCredentials) -> bool:
    resp = requests.get(f"{sim.url}/audit-log/v1/logs", params={"limit": 1}, auth=auth, timeout=10)
    return resp.status_code == 200


def test_form_body_credentials_on_the_workspace_endpoint(sim) -> None:
    auth = workspace_auth(sim, client_of(sim))
    assert api_ok(sim, auth)
    assert auth.granted_scope == "ccs.audit-trail.view"  # sent as a JSON list, joined


def test_basic_credentials_on_the_sso_endpoint(sim) -> None:
    client = client_of(sim)
    auth = OAuth2ClientCredentials(f"{sim.url}/as/token.oauth2", client.id, Secret(client.secret), client_auth="basic", settings=FAST)
    assert api_ok(sim, auth)


def test_token_is_cached_then_renewed_a_margin_before_expiry_without_a_401() -> None:
    clock = FakeClock()
    with GreenLakeSimulator(per_hour=0, faults=Faults(token_ttl=600)) as s:
        auth = workspace_auth(s, client_of(s), clock=clock)
        assert api_ok(s, auth) and api_ok(s, auth)
        assert auth.fetched == 1
        clock.now += 600 - 60 - 1  # still inside the 60 s margin
        assert api_ok(s, auth)
        assert auth.fetched == 1
        clock.now += 2
        assert api_ok(s, auth)
        assert auth.fetched == 2
        assert all(call.status == 200 for call in s.calls)


def test_short_lifetimes_renew_at_half_life() -> None:
    clock = FakeClock()
    with GreenLakeSimulator(per_hour=0, faults=Faults(token_ttl=10)) as s:
        auth = workspace_auth(s, client_of(s), clock=clock)
        auth.token()
        clock.now += 4.9
        auth.token()
        assert auth.fetched == 1
        clock.now += 0.2
        auth.token()
        assert auth.fetched == 2


def test_refresh_forgets_the_token(sim) -> None:
    auth = workspace_auth(sim, client_of(sim))
    first = auth.token()
    auth.refresh()
    assert auth.token() != first
    assert auth.fetched == 2


def test_wrong_secret_is_an_auth_error_that_does_not_show_the_secret(sim) -> None:
    client = client_of(sim)
    wrong = "definitely-not-the-secret-123"
    auth = workspace_auth(sim, client, secret=wrong)
    with pytest.raises(AuthError) as info:
        auth.token()
    assert info.value.status == 401
    assert "invalid_client" in str(info.value)
    assert wrong not in str(info.value) and client.secret not in str(info.value)


def test_client_of_another_workspace_is_refused(sim) -> None:
    client = client_of(sim)
    other = [w for w in sim.workspaces.values() if w is not client.workspace][0]
    auth = OAuth2ClientCredentials(f"{sim.url}/authorization/v2/oauth2/{other.id}/token", client.id, Secret(client.secret), settings=FAST)
    with pytest.raises(AuthError, match="does not belong"):
        auth.token()


def test_token_endpoint_429s_are_retried() -> None:
    with GreenLakeSimulator(per_hour=0, faults=Faults(throttle_rate=0.5, retry_after=0.01, seed=3)) as s:
        auth = workspace_auth(s, client_of(s))
        auth.token()
        assert any(status == 429 for _, _, status in s.log)
        assert auth.fetched == 1


def test_access_token_is_redacted_everywhere(sim) -> None:
    auth = workspace_auth(sim, client_of(sim))
    token = auth.token().reveal()
    assert token not in redact(f"header was Bearer {token}")
    assert token not in repr(auth) and auth.client_id in repr(auth)


class OddTokens(Simulator):
    """Token endpoint returning whatever a test sets in ``answer``."""

    VENDOR = "odd"

    def setup(self) -> None:
        self.answer = Response.json({})
        self.route("POST", "/token", lambda request: self.answer)


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"token_type": "Bearer", "expires_in": 60}, 200, "no access_token"),
        ({"access_token": "abcdefgh", "token_type": "mac"}, 200, "unsupported token_type"),
        ({"error": "invalid_client"}, 400, "returned HTTP 400"),
        ({"error": "invalid_grant"}, 403, "returned HTTP 403"),
    ],
)
def test_bad_token_responses_are_auth_errors(body: dict, status: int, words: str) -> None:
    with OddTokens() as s:
        s.answer = Response.json(body, status)
        auth = OAuth2ClientCredentials(f"{s.url}/token", "id", Secret("the-secret"), settings=FAST)
        with pytest.raises(AuthError, match=words):
            auth.token()


@pytest.mark.parametrize("expires_in, lifetime", [("120", 120.0), (None, DEFAULT_LIFETIME), ("soon", DEFAULT_LIFETIME), (-5, DEFAULT_LIFETIME)])
def test_expires_in_forms(expires_in, lifetime: float) -> None:
    clock = FakeClock()
    with OddTokens() as s:
        body = {"access_token": "tok-abcdef", "token_type": "bearer", "scope": "a b"}
        if expires_in is not None:
            body["expires_in"] = expires_in
        s.answer = Response.json(body)
        auth = OAuth2ClientCredentials(f"{s.url}/token", "id", Secret("the-secret"), settings=FAST, clock=clock)
        auth.token()
        clock.now += lifetime - min(60, lifetime / 2) - 0.5
        auth.token()
        assert auth.fetched == 1
        clock.now += 1
        auth.token()
        assert auth.fetched == 2
        assert auth.granted_scope == "a b"


def test_unknown_client_auth_style_is_refused() -> None:
    with pytest.raises(ValueError):
        OAuth2ClientCredentials("http://127.0.0.1:1/token", "id", Secret("the-secret"), client_auth="jwt")
