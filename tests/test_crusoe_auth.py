"""Crusoe HMAC signing: known answers from the vendor vectors and the support-article algorithm."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from forwarder.auth.crusoe_hmac import CrusoeHmacAuth, canonical_query, decode_key, signature
from forwarder.secrets import Secret

VECTORS_FILE = Path("/work/shared/vendors/examples/crusoe/signing_test_vectors.json")
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
ACCESS = "EXAMPLEACCESSKEYID"
ORG_PATH = "/v1alpha5/organizations/de8f27fe-8438-45e7-a2c2-a2767660625f/audit-logs"
NOON = dt.datetime(2025, 1, 15, 12, 0, 0, tzinfo=dt.timezone.utc)

# The vendor's vectors (vendors/crusoe.md §3), inlined so the test does not depend on the shared tree.
CASES = [
    ("", "", "2025-01-15T12:00:00Z", "Yt0aZyh2gjMZmVeykMDsUcCfS5wlJYlcu65D8ThjR_I"),
    (
        "start_time=2025-01-15T11%3A00%3A00Z&limit=100&end_time=2025-01-15T12%3A00%3A00Z&actions=Create%2CUpdate",
        "actions=Create%2CUpdate&end_time=2025-01-15T12%3A00%3A00Z&limit=100&start_time=2025-01-15T11%3A00%3A00Z",
        "2025-01-15T12:00:00Z",
        "zo2WsiYaX52Zj59LjCXaXEzj3kaVHOoXGVQgSkZeBUc",
    ),
    (
        "limit=100&next_token=bXktbGFzdC12bQ&start_time=2025-01-15T11:00:00%2B00:00",
        "limit=100&next_token=bXktbGFzdC12bQ&start_time=2025-01-15T11%3A00%3A00%2B00%3A00",
        "2025-01-15T12:00:00Z",
        "CnOpX8I8M3Gxc3MvHC3dbhb6AVqV0FrDQJyn43B5lYY",
    ),
    ("", "", "2025-01-15T12:00:00+00:00", "i5U7fwjmN8TxPAV7SsggYqaRun52S4LJpbiZY0KW3Rc"),
]


def seed_style_signature(secret: str, path: str, query: str, verb: str, timestamp: str) -> str:
    """The support-article algorithm, written out independently: padded decode, HMAC, strip '='."""
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    payload = path + "\n" + query + "\n" + verb + "\n" + timestamp + "\n"
    mac = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def prepared(url: str, auth: CrusoeHmacAuth, **kwargs) -> requests.PreparedRequest:
    return requests.Request("GET", url, auth=auth, **kwargs).prepare()


@pytest.mark.parametrize("sent, canonical, timestamp, expected", CASES)
def test_vendor_vectors(sent, canonical, timestamp, expected):
    assert canonical_query(sent) == canonical
    assert signature(decode_key(KEY), ORG_PATH, canonical, "GET", timestamp) == expected


def test_vectors_file_matches_inlined_cases():
    if not VECTORS_FILE.exists():
        pytest.skip("shared vendor facts not present")
    vectors = json.loads(VECTORS_FILE.read_text())
    assert vectors["common"]["secret_key"] == KEY
    assert [(urlsplit(v["url"]).query, v["canonical_query"], v["timestamp"], v["signature"]) for v in vectors["vectors"]] == CASES


def test_auth_object_signs_and_sends_the_canonical_query():
    auth = CrusoeHmacAuth(ACCESS, Secret(KEY), clock=lambda: NOON)
    url = "https://api.crusoecloud.com" + ORG_PATH + "?" + CASES[1][0]
    r = prepared(url, auth)
    assert urlsplit(r.url).query == CASES[1][1]  # what is sent is what is signed
    assert r.headers["X-Crusoe-Timestamp"] == "2025-01-15T12:00:00Z"
    assert r.headers["Authorization"] == f"Bearer 1.0:{ACCESS}:{CASES[1][3]}"


def test_auth_object_with_requests_params_matches_seed_algorithm():
    """A params dict sent in any order signs like the seed script's hand-sorted query string."""
    auth = CrusoeHmacAuth(ACCESS, Secret(KEY), clock=lambda: NOON + dt.timedelta(microseconds=123456))
    r = prepared(
        "https://api.crusoecloud.com" + ORG_PATH,
        auth,
        params={"target_types": "VM", "project_ids": "fc9hyy16-305c-k8fg-8d70-b474fec1f001"},
    )
    hand_sorted = "project_ids=fc9hyy16-305c-k8fg-8d70-b474fec1f001&target_types=VM"
    assert urlsplit(r.url).query == hand_sorted
    expected = seed_style_signature(KEY, ORG_PATH, hand_sorted, "GET", "2025-01-15T12:00:00Z")
    assert r.headers["Authorization"] == f"Bearer 1.0:{ACCESS}:{expected}"
    # The seed's own timestamp spelling signs to the same value as the vendor vector (d).
    assert seed_style_signature(KEY, ORG_PATH, "", "GET", "2025-01-15T12:00:00+00:00") == CASES[3][3]


def test_values_with_reserved_characters_are_encoded_like_crusoe():
    auth = CrusoeHmacAuth(ACCESS, Secret(KEY), clock=lambda: NOON)
    r = prepared(
        "https://api.crusoecloud.com" + ORG_PATH,
        auth,
        params=[("surfaces", "Crusoe Terraform/v0.5.21,Browser"), ("actor_types", "User,Crusoe Admin"), ("limit", "5")],
    )
    query = urlsplit(r.url).query
    assert query == "actor_types=User%2CCrusoe+Admin&limit=5&surfaces=Crusoe+Terraform%2Fv0.5.21%2CBrowser"
    expected = seed_style_signature(KEY, ORG_PATH, query, "GET", "2025-01-15T12:00:00Z")
    assert r.headers["Authorization"].endswith(":" + expected)


def test_canonical_query_rules():
    assert canonical_query("b=2&&a=1&b=1&c") == "a=1&b=2&b=1&c="  # repeated keys keep their order
    assert canonical_query("q=a+b&r=%7e") == "q=a+b&r=~"
    assert canonical_query("Z=1&a=1&_=1") == "Z=1&_=1&a=1"  # byte order, not case-folded
    with pytest.raises(ValueError):
        canonical_query("a=1;b=2")
    with pytest.raises(ValueError):
        canonical_query("a=%zz")


def test_secret_key_decoding():
    assert decode_key(KEY) == bytes(range(32))
    assert decode_key(KEY + "=") == bytes(range(32))  # pasted with padding: still the same bytes
    for bad in ("", "not base64!", "A", "abc/def+"):
        with pytest.raises(ValueError) as err:
            decode_key(bad)
        assert "base64" in str(err.value) and (not bad or bad not in str(err.value))


def test_bad_secret_fails_at_construction_without_echoing_it():
    with pytest.raises(ValueError) as err:
        CrusoeHmacAuth(ACCESS, Secret("s3cr3t!value"))
    assert "s3cr3t!value" not in str(err.value)


def test_each_request_is_signed_afresh():
    times = iter([NOON, NOON + dt.timedelta(seconds=1)])
    auth = CrusoeHmacAuth(ACCESS, Secret(KEY), clock=lambda: next(times))
    url = "https://api.crusoecloud.com" + ORG_PATH
    first, second = prepared(url, auth), prepared(url, auth)
    assert first.headers["X-Crusoe-Timestamp"] != second.headers["X-Crusoe-Timestamp"]
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert KEY not in repr(auth) and KEY not in repr(vars(auth))
