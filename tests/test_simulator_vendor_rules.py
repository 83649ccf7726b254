"""Simulators refuse what the vendor documents as wrong, for requests built by hand here.

Nothing below signs, encodes or builds a request with the forwarder's own code:
Crusoe signatures, GreenLake filters, Progress MFT assertions (JWS by hand, with
``cryptography``) and Carbon Black bodies are written out from the vendor notes
(vendors/*.md), so a simulator that agreed with the client by construction, or a
client and simulator sharing a mistake, would show here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import time
import uuid
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.auth import crusoe_hmac
from forwarder.simulators import crusoe as crusoe_sim
from forwarder.simulators.base import format_rfc3339, parse_rfc3339
from forwarder.simulators.carbon_black_cloud import DEMO_API_ID, DEMO_SECRET, CarbonBlackCloudSimulator
from forwarder.simulators.crusoe import CrusoeSimulator
from forwarder.simulators.hpe_greenlake import FILTER_OPS, FilterError, GreenLakeSimulator, parse_filter
from forwarder.simulators.progress_mft import ProgressMftSimulator
from tests.test_crusoe_auth import CASES, KEY, ORG_PATH
from tests.test_hpe_greenlake_simulator import ERROR_FIELDS, first_client, get, token

UTC = dt.timezone.utc


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def raw_get(url: str, target: str, headers: dict[str, str]) -> tuple[int, Any]:
    """GET ``target`` byte for byte (no client library re-encodes the query)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


# -- Crusoe: HMAC over path, canonical query, verb, timestamp (vendors/crusoe.md §3) ----------------
def crusoe_signature(secret_key: str, payload: str, *, key_as_text: bool = False) -> str:
    key = secret_key.encode() if key_as_text else base64.urlsafe_b64decode(secret_key + "=" * (-len(secret_key) % 4))
    return b64url(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


@pytest.mark.parametrize("sent, canonical, timestamp, expected", CASES)
def test_crusoe_simulator_reproduces_the_vendor_vectors(sent, canonical, timestamp, expected):
    assert crusoe_sim.canonical_query(sent) == canonical
    assert crusoe_sim.expected_signature(KEY, "GET", ORG_PATH, sent, timestamp) == expected


@pytest.fixture(scope="module")
def crusoe():
    end = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    with CrusoeSimulator(records=50, span=3600, end=end, seed=5) as sim:
        yield sim, end


def _crusoe_request(end: dt.datetime) -> tuple[str, str]:
    """A query sent out of order, with ':' escaped, a comma list and a space; and its canonical form by hand."""
    a = (end - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ").replace(":", "%3A")
    b = (end + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ").replace(":", "%3A")
    sent = f"start_time={a}&limit=5&actor_types=User%2CCrusoe+Admin&end_time={b}"
    canonical = f"actor_types=User%2CCrusoe+Admin&end_time={b}&limit=5&start_time={a}"
    return sent, canonical


CRUSOE_MISTAKES = {
    "signed over the query in the order sent": lambda p, c, s, stamp: f"{p}\n{s}\nGET\n{stamp}\n",
    "signed with ':' not escaped": lambda p, c, s, stamp: f"{p}\n{c.replace('%3A', ':')}\nGET\n{stamp}\n",
    "signed with lower-case hex": lambda p, c, s, stamp: f"{p}\n{c.replace('%3A', '%3a')}\nGET\n{stamp}\n",
    "signed with a space as %20": lambda p, c, s, stamp: f"{p}\n{c.replace('+', '%20')}\nGET\n{stamp}\n",
    "signed without the version prefix": lambda p, c, s, stamp: f"{p.removeprefix('/v1alpha5')}\n{c}\nGET\n{stamp}\n",
    "signed without the last newline": lambda p, c, s, stamp: f"{p}\n{c}\nGET\n{stamp}",
    "signed over another form of the same time": lambda p, c, s, stamp: f"{p}\n{c}\nGET\n{stamp[:-1]}+00:00\n",
}


@pytest.mark.parametrize("mistake", sorted(CRUSOE_MISTAKES))
def test_crusoe_refuses_a_hand_signed_request_with_a_documented_mistake(crusoe, mistake):
    sim, end = crusoe
    path = f"/v1alpha5/organizations/{sim.org_id}/audit-logs"
    sent, canonical = _crusoe_request(end)
    stamp = dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def send(payload: str, **kw: Any) -> tuple[int, Any]:
        auth = f"Bearer 1.0:{sim.access_key_id}:{crusoe_signature(sim.secret_key, payload, **kw)}"
        return raw_get(sim.url, f"{path}?{sent}", {"X-Crusoe-Timestamp": stamp, "Authorization": auth})

    status, body = send(f"{path}\n{canonical}\nGET\n{stamp}\n")
    assert status == 200 and len(body["items"]) == 5  # the control: the same request, signed as documented
    assert send(CRUSOE_MISTAKES[mistake](path, canonical, sent, stamp)) == (401, {"code": "401", "message": "bad_credential"})
    assert sim.auth_failures[-1] == "signature mismatch"


def test_crusoe_refuses_a_text_key_and_a_padded_signature(crusoe):
    sim, end = crusoe
    path = f"/v1alpha5/organizations/{sim.org_id}/audit-logs"
    sent, canonical = _crusoe_request(end)
    stamp = dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = f"{path}\n{canonical}\nGET\n{stamp}\n"
    refused = (401, {"code": "401", "message": "bad_credential"})
    for sig in (crusoe_signature(sim.secret_key, payload, key_as_text=True), crusoe_signature(sim.secret_key, payload) + "="):
        headers = {"X-Crusoe-Timestamp": stamp, "Authorization": f"Bearer 1.0:{sim.access_key_id}:{sig}"}
        assert raw_get(sim.url, f"{path}?{sent}", headers) == refused


def test_crusoe_accepts_the_offset_form_of_the_timestamp_when_signed_as_sent(crusoe):
    sim, _ = crusoe
    path = f"/v1alpha5/organizations/{sim.org_id}/audit-logs"
    stamp = dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    sig = crusoe_signature(sim.secret_key, f"{path}\n\nGET\n{stamp}\n")
    status, _ = raw_get(sim.url, path, {"X-Crusoe-Timestamp": stamp, "Authorization": f"Bearer 1.0:{sim.access_key_id}:{sig}"})
    assert status == 200


def test_client_keeps_a_non_utf8_escape_as_the_byte_it_is():
    # vendors/crusoe.md §3: %XX decodes to a byte and is re-encoded as that byte.
    assert crusoe_hmac.canonical_query("k=%FF&j=%e9") == "j=%E9&k=%FF"


_QUERY_CHARS = st.sampled_from(list("abZ_~.-=&+%;2F3Afé€ ") + ["%FF", "%2B", "%20", "%3A", "%e2%82%ac"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_QUERY_CHARS, max_size=24).map("".join))
def test_client_and_simulator_canonicalize_any_query_alike(raw):
    """Two implementations of one documented algorithm: the same canonical form, or both refuse."""
    def outcome(canonicalize):
        try:
            return canonicalize(raw)
        except ValueError:
            return None

    assert outcome(crusoe_hmac.canonical_query) == outcome(crusoe_sim.canonical_query)


# -- GreenLake: the filter grammar and field table (vendors/hpe-greenlake.md §5) -----------------------
@pytest.fixture(scope="module")
def greenlake():
    with GreenLakeSimulator(seed=3, rate_limit=None, rate_overall=None) as sim:
        yield sim


SIX_IDS = ", ".join(f"'{uuid.UUID(int=n)}'" for n in range(6))


@pytest.mark.parametrize(
    "version, expression",
    [
        ("v2beta1", "createdAt gt '2025-06-01T00:00:00Z'"),  # only lt and ge on createdAt
        ("v2beta1", "createdAt le '2025-06-01T00:00:00Z'"),
        ("v2beta1", "createdAt eq '2025-06-01T00:00:00Z'"),
        ("v2beta1", "category ne 'User Activity'"),
        ("v2beta1", "region in ('us-west', 'eu-central')"),  # eq only
        ("v2beta1", "contains(category, 'User')"),  # eq and in only
        ("v2beta1", "description in ('a', 'b')"),
        ("v2beta1", "startswith(username, 'a')"),
        ("v2beta1", "username EQ 'a@b.example'"),  # operators are lower case
        ("v2beta1", "category eq 'a' AND region eq 'b'"),
        ("v2beta1", "not category eq 'a'"),
        ("v2beta1", "(category eq 'a')"),
        ("v2beta1", "hasDetails eq true"),  # values are always quoted, booleans too
        ("v2beta1", "hasDetails eq 'yes'"),
        ("v2beta1", "workspace/type eq 'PERSONAL'"),
        ("v2beta1", f"serviceOffer/id in ({SIX_IDS})"),  # at most five
        ("v2beta1", "application/id eq 'x'"),  # a v1 name
        ("v1", "serviceOffer/id eq 'x'"),  # a v2beta1 name
        ("v1", "application/id in ('x', 'y')"),  # v1: eq only
        ("v1", "createdAt ge '2025-06-01 00:00:00'"),  # not RFC 3339
        ("v1", "createdAt ge \"2025-06-01T00:00:00Z\""),
    ],
)
def test_greenlake_refuses_what_the_grammar_does_not_allow(greenlake, version, expression):
    headers = token(greenlake, first_client(greenlake))
    resp = get(greenlake, headers, version, filter=expression, limit="1")
    body = resp.json()
    assert resp.status_code == 400 and body["httpStatusCode"] == 400, body
    assert ERROR_FIELDS <= set(body) and body["debugId"] and body["errorDetails"][0]["issues"][0]["source"] == "filter"


def test_greenlake_takes_every_documented_form(greenlake):
    headers = token(greenlake, first_client(greenlake))
    expression = (
        "createdAt ge '2025-06-01T00:00:00Z' and createdAt lt '2025-06-01T01:00:00.0Z' and category in ('User Activity', "
        "'Device Management') and contains(description, 'in') and workspace/type eq 'STANDALONE' and hasDetails eq 'false' "
        "and serviceOffer/id in ('00000000-0000-0000-0000-000000000000', '68067533-5764-401a-9620-24e6e2cdc574')"
    )
    assert get(greenlake, headers, "v2beta1", filter=expression, limit="1").status_code == 200


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("acdeginorstA() ,'/") + ["createdAt", " eq ", " in ", " and ", "contains("]), max_size=30).map("".join))
def test_greenlake_parser_answers_any_text_with_conditions_or_a_refusal(text):
    for version in ("v1", "v2beta1"):
        try:
            conditions = parse_filter(text, version)
        except FilterError:
            continue
        assert all(c.op in FILTER_OPS[version][c.field] for c in conditions)


# -- Progress MFT: the ES256 client assertion (vendors/progress-mft.md §3) -----------------------------
TENANT = "tenant-under-test"


@pytest.fixture(scope="module")
def mft():
    with ProgressMftSimulator() as sim:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = sim.register_key(TENANT, key.public_key())
        yield sim, key, kid


def jws(key: ec.EllipticCurvePrivateKey, header: dict[str, Any], claims: dict[str, Any], *, der: bool = False) -> str:
    """A compact JWS signed with ES256 as RFC 7518 §3.4 says: the raw 64-byte r || s (or, wrongly, DER)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    if not der:
        r, s = decode_dss_signature(signature)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{b64url(signature)}"


def good_claims(sim: ProgressMftSimulator, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": TENANT, "sub": TENANT, "aud": sim.token_url, "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 60}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def post_token(sim: ProgressMftSimulator, assertion: str) -> requests.Response:
    body = {"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    return requests.post(sim.token_url, json=body, timeout=10)


def _alg_none(sim, key, kid):
    header = b64url(json.dumps({"alg": "none", "kid": kid}).encode())
    return f"{header}.{b64url(json.dumps(good_claims(sim)).encode())}."


def _alg_hs256(sim, key, kid):
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{b64url(json.dumps(good_claims(sim)).encode())}"
    return f"{signing_input}.{b64url(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())}"


MFT_MISTAKES = {
    "aud of another region": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, aud="https://api.eu.mft.progress.com/v1/oauth/token")),
    "aud without the path": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, aud=sim.url)),
    "expired": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, exp=int(time.time()) - 60)),
    "exp over 10 minutes ahead": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, exp=int(time.time()) + 660)),
    "nbf in the future": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, nbf=int(time.time()) + 120)),
    "iat in the future": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, iat=int(time.time()) + 120)),
    "no iat": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, iat=None)),
    "no jti": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, jti=None)),
    "exp as text": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, exp=str(int(time.time()) + 60))),
    "iss of another tenant": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, iss="someone-else")),
    "sub not the tenant": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim, sub="a-user")),
    "unknown kid": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": "not-registered"}, good_claims(sim)),
    "no kid": lambda sim, key, kid: jws(key, {"alg": "ES256"}, good_claims(sim)),
    "alg ES384 in the header": lambda sim, key, kid: jws(key, {"alg": "ES384", "kid": kid}, good_claims(sim)),
    "alg none": _alg_none,
    "alg HS256 keyed with the public key": _alg_hs256,
    "DER signature instead of r || s": lambda sim, key, kid: jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim), der=True),
    "signed by another key": lambda sim, key, kid: jws(ec.generate_private_key(ec.SECP256R1()), {"alg": "ES256", "kid": kid}, good_claims(sim)),
    "not a JWS": lambda sim, key, kid: "not.a.jws",
}


@pytest.mark.parametrize("mistake", sorted(MFT_MISTAKES))
def test_progress_mft_refuses_a_hand_built_assertion_with_a_mistake(mft, mistake):
    sim, key, kid = mft
    good = post_token(sim, jws(key, {"alg": "ES256", "typ": "JWT", "kid": kid}, good_claims(sim)))
    assert good.status_code == 200 and good.json()["access_token"]  # the control: built right, it is taken
    resp = post_token(sim, MFT_MISTAKES[mistake](sim, key, kid))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", resp.text


def test_progress_mft_refuses_a_replayed_assertion(mft):
    sim, key, kid = mft
    assertion = jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim))
    assert post_token(sim, assertion).status_code == 200
    replay = post_token(sim, assertion)
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("start", ["1782432000", "2026-06-26", "2026-06-26T02:00:00+02:00", "2026-06-26 00:00:00Z"])
def test_progress_mft_report_times_are_utc_rfc3339(mft, start):
    sim, key, kid = mft
    bearer = post_token(sim, jws(key, {"alg": "ES256", "kid": kid}, good_claims(sim))).json()["access_token"]
    body = {"type": 0, "start": start, "end": "2026-06-26T23:00:00Z", "actor": None, "actorType": "All",
            "actions": [], "resources": [], "outcomes": [], "sourceIp": None}
    url = sim.url + "/v1/reports/audit-logs"
    resp = requests.post(url, json=body, headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    assert resp.status_code == 400 and "start" in resp.json()["errors"]
    ok = requests.post(url, json={**body, "start": "2026-06-26T00:00:00Z"}, headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    assert ok.status_code == 201


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("eyJhbGciOi.-_=AQ") + ["e30", "bnVsbA"]), max_size=40).map("".join))
def test_progress_mft_answers_any_assertion_text_with_a_reason(text):
    problem, tenant = ProgressMftSimulator()._verify(text)  # not started: _verify needs no server
    assert problem and tenant == ""


# -- Carbon Black Cloud: X-Auth-Token and the search body (vendors/carbon-black-cloud.md §3, §5) ------
@pytest.fixture(scope="module")
def cbc():
    with CarbonBlackCloudSimulator(seed=2) as sim:
        yield sim


def cbc_search(sim: CarbonBlackCloudSimulator, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    headers = {"X-Auth-Token": f"{DEMO_SECRET}/{DEMO_API_ID}"} if headers is None else headers
    return requests.post(f"{sim.url}/audit_log/v1/orgs/{sim.org_key}/logs/_search", json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {DEMO_SECRET}/{DEMO_API_ID}"},  # only the X-Auth-Token header carries the key
        {"X-Auth-Token": f"Bearer {DEMO_SECRET}/{DEMO_API_ID}"},
        {"X-Auth-Token": f"{DEMO_SECRET}:{DEMO_API_ID}"},
        {"X-Auth-Token": f"{DEMO_SECRET}/{DEMO_API_ID.lower()}"},
        {"X-Auth-Token": f"{DEMO_SECRET}/"},
    ],
)
def test_carbon_black_refuses_a_malformed_api_key_header(cbc, headers):
    assert cbc_search(cbc, {"rows": 1}).status_code == 200
    assert cbc_search(cbc, {"rows": 1}, headers).status_code == 401


@pytest.mark.parametrize(
    "create_time",
    [
        {"start": "1709251200", "end": "1709337600"},  # epoch seconds are not ISO 8601
        {"start": "2024-03-01", "end": "2024-03-02"},
        {"start": "2024-03-01T00:00:00", "end": "2024-03-02T00:00:00"},  # no zone
        {"range": "-\u0663d"},  # an Arabic-Indic digit
        {"range": "-3d\n"},
        {"range": "-99999999999999999999y"},
    ],
)
def test_carbon_black_refuses_create_time_outside_the_documented_forms(cbc, create_time):
    resp = cbc_search(cbc, {"criteria": {"create_time": create_time}})
    assert resp.status_code == 400 and resp.json()["success"] is False
    fine = {"start": "2024-03-01T00:00:00.000000Z", "end": "2024-03-02T00:00:00.000000Z"}
    assert cbc_search(cbc, {"criteria": {"create_time": fine}}).status_code == 200


# -- the simulators' own time format helpers -------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)), st.sampled_from([0, 3, 6]))
def test_rfc3339_round_trip(moment, digits):
    text = format_rfc3339(moment, digits)
    unit = 10 ** (6 - digits)
    assert parse_rfc3339(text, utc_only=True) == moment.replace(microsecond=moment.microsecond // unit * unit)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789-:T.Zz+ t\u0663")), max_size=40))
def test_rfc3339_parser_answers_any_text_with_a_time_or_value_error(text):
    try:
        parsed = parse_rfc3339(text)
    except ValueError:
        return
    assert parsed.tzinfo == UTC
