"""The GreenLake simulator is as strict as the documented API: auth, query rules, cap, rate limits, shapes."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
import requests

from forwarder.simulators.hpe_greenlake import PLATFORM_ID, SERVICES, GreenLakeSimulator
from tests.fakeclock import FakeClock

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 6, 1, tzinfo=UTC)
WINDOW = "createdAt ge '2025-06-01T00:00:00Z' and createdAt lt '2025-06-01T02:00:00Z'"
ERROR_FIELDS = {"errorCode", "message", "debugId", "httpStatusCode"}


@pytest.fixture(scope="module")
def sim():
    with GreenLakeSimulator(seed=7, rate_limit=None, rate_overall=None) as s:
        yield s


def token(sim: GreenLakeSimulator, client) -> dict[str, str]:
    resp = requests.post(
        f"{sim.url}/authorization/v2/oauth2/{client.workspace.id}/token",
        data={"grant_type": "client_credentials", "client_id": client.id, "client_secret": client.secret},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def first_client(sim: GreenLakeSimulator, kind: str = "STANDALONE"):
    return next(c for c in sim.clients.values() if c.workspace.type == kind)


def get(sim, headers, version="v1", **params) -> requests.Response:
    return requests.get(f"{sim.url}/audit-log/{version}/logs", params=params, headers=headers, timeout=10)


# -- tokens -------------------------------------------------------------------------
def test_token_endpoint_rules(sim) -> None:
    client = first_client(sim)
    url = f"{sim.url}/as/token.oauth2"
    good = {"grant_type": "client_credentials", "client_id": client.id, "client_secret": client.secret}
    ok = requests.post(url, data=good, timeout=10)
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] > 0
    basic = requests.post(url, data={"grant_type": "client_credentials"}, auth=(client.id, client.secret), timeout=10)
    assert basic.status_code == 200
    cases = [
        (requests.post(url, data={**good, "client_secret": "nope"}, timeout=10), 401, "invalid_client"),
        (requests.post(url, data=good, auth=(client.id, client.secret), timeout=10), 400, "invalid_request"),
        (requests.post(url, json=good, timeout=10), 400, "invalid_request"),
        (requests.post(url, data={**good, "grant_type": "password"}, timeout=10), 400, "unsupported_grant_type"),
        (requests.post(url, data={"grant_type": "client_credentials"}, auth=(client.id, "wrong"), timeout=10), 401, "invalid_client"),
        (requests.post(url, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic %%%"}, timeout=10), 401, "invalid_client"),
    ]
    for resp, status, error in cases:
        assert (resp.status_code, resp.json()["error"]) == (status, error)
    other = first_client(sim, "MSP")
    wrong_ws = requests.post(f"{sim.url}/authorization/v2/oauth2/{other.workspace.id}/token", data=good, timeout=10)
    assert wrong_ws.status_code == 401


def test_api_needs_a_valid_unexpired_token(sim) -> None:
    client = first_client(sim)
    for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}):
        resp = get(sim, headers, limit=1)
        assert resp.status_code == 401
        assert ERROR_FIELDS <= set(resp.json())
    headers = token(sim, client)
    assert get(sim, headers, limit=1).status_code == 200
    sim.tokens.expire_all()
    assert get(sim, headers, limit=1).status_code == 401


# -- query rules ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "version, params, where",
    [
        ("v1", {"limit": "2001"}, "limit"),
        ("v1", {"limit": "0"}, "limit"),
        ("v1", {"limit": "ten"}, "limit"),
        ("v1", {"offset": "-1"}, "offset"),
        ("v1", {"sort": "createdAt asc"}, "sort"),
        ("v2beta1", {"all": "x"}, "all"),
        ("v2beta1", {"sort": "createdAt up"}, "sort"),
        ("v1", {"page": "2"}, "page"),
        ("v1", {"select": "username"}, "select"),
        ("v2beta1", {"select": "user/username"}, "select"),
        ("v1", {"filter": "username eq 'a'"}, "filter"),
        ("v2beta1", {"filter": "category eq 'a' or category eq 'b'"}, "filter"),
    ],
)
def test_bad_queries_get_hpe_400_bodies(sim, version: str, params: dict, where: str) -> None:
    resp = get(sim, token(sim, first_client(sim)), version, **params)
    assert resp.status_code == 400
    body = resp.json()
    assert ERROR_FIELDS <= set(body) and body["httpStatusCode"] == 400 and body["debugId"]
    assert body["errorDetails"][0]["issues"][0]["source"] == where


def test_repeated_parameter_is_refused(sim) -> None:
    headers = token(sim, first_client(sim))
    resp = requests.get(f"{sim.url}/audit-log/v1/logs?limit=1&limit=2", headers=headers, timeout=10)
    assert resp.status_code == 400


def test_envelopes_and_item_shapes_per_version(sim) -> None:
    client = first_client(sim)
    headers = token(sim, client)
    v1 = get(sim, headers, "v1", filter=WINDOW, limit=5).json()
    assert set(v1) == {"items", "count", "offset", "total", "remainingRecords"}
    item = v1["items"][0]
    assert item["type"] == "/audit-log/logs"
    assert {"id", "user", "application", "region", "category", "description", "workspace", "createdAt", "updatedAt", "hasDetails", "generation"} <= set(item)
    assert set(item["workspace"]) == {"id", "workspaceName"}
    v2 = get(sim, headers, "v2beta1", filter=WINDOW, limit=5).json()
    item = v2["items"][0]
    assert item["type"] == "/audit-log/log"
    assert {"id", "serviceOffer", "username", "category", "description", "workspace", "createdAt", "hasDetails"} <= set(item)
    assert set(item["workspace"]) == {"id", "name", "type"}
    assert "user" not in item and "generation" not in item


def test_v1_is_newest_first_and_v2_sorts_as_asked(sim) -> None:
    headers = token(sim, first_client(sim))
    def times(version, **kw):
        return [i["createdAt"] for i in get(sim, headers, version, filter=WINDOW, limit=2000, **kw).json()["items"]]

    v1 = times("v1")
    assert len(v1) > 10 and _sorted_by_time(v1, reverse=True)
    assert _sorted_by_time(times("v2beta1"), reverse=True)
    assert _sorted_by_time(times("v2beta1", sort="createdAt asc"), reverse=False)


def _sorted_by_time(stamps: list[str], reverse: bool) -> bool:
    parsed = [dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]
    return parsed == sorted(parsed, reverse=reverse)


def test_v2_without_service_offer_returns_platform_logs_only(sim) -> None:
    headers = token(sim, first_client(sim))
    platform = get(sim, headers, "v2beta1", filter=WINDOW, limit=2000).json()["items"]
    assert platform and {i["serviceOffer"]["id"] for i in platform} == {PLATFORM_ID}
    ids = ", ".join(f"'{s.id}'" for s in SERVICES[:5])
    mixed = get(sim, headers, "v2beta1", filter=f"{WINDOW} and serviceOffer/id in ({ids})", limit=2000).json()["items"]
    assert len({i["serviceOffer"]["id"] for i in mixed}) > 1


def test_filters_select_and_all_narrow_results(sim) -> None:
    client = first_client(sim)
    headers = token(sim, client)
    everything = sim.records(client.workspace.id, "v1", T0, T0 + dt.timedelta(hours=2))
    cat = get(sim, headers, filter=f"{WINDOW} and category eq 'User Activity'", limit=2000).json()
    assert cat["total"] == sum(1 for r in everything if r["category"] == "User Activity") > 0
    needle = everything[0]["description"][:9]
    contains = get(sim, headers, filter=f"{WINDOW} and contains(description, '{needle}')", limit=2000).json()
    assert contains["items"] and all(needle in i["description"] for i in contains["items"])
    assert contains["total"] == sum(1 for r in everything if needle in r["description"])
    details = get(sim, headers, filter=f"{WINDOW} and hasDetails eq 'true'", limit=2000).json()
    assert details["items"] and all(i["hasDetails"] is True for i in details["items"])
    selected = get(sim, headers, filter=WINDOW, select="createdAt,user/username", limit=3).json()["items"][0]
    assert set(selected) == {"id", "type", "createdAt", "user"} and set(selected["user"]) == {"username"}
    found = get(sim, headers, filter=WINDOW, all=everything[0]["description"], limit=2000).json()["items"]
    assert everything[0]["id"] in {i["id"] for i in found}


def test_cap_and_remaining_records() -> None:
    with GreenLakeSimulator(per_hour=0, rate_limit=None, rate_overall=None) as s:
        client = first_client(s)
        s.add_records(client.workspace.id, T0, T0 + dt.timedelta(minutes=10), 10_050)
        headers = token(s, client)
        first = get(s, headers, filter=WINDOW, limit=2000).json()
        assert (first["total"], first["remainingRecords"], first["count"]) == (10_000, True, 2000)
        assert get(s, headers, filter=WINDOW, limit=2000, offset=10_000).json()["items"] == []
        last = get(s, headers, filter=WINDOW, limit=2000, offset=9_000).json()
        assert last["count"] == 1000
        narrower = "createdAt ge '2025-06-01T00:00:00Z' and createdAt lt '2025-06-01T00:05:00Z'"
        part = get(s, headers, filter=narrower, limit=1).json()
        assert part["total"] < 10_000 and part["remainingRecords"] is False


def test_per_client_and_overall_rate_limits() -> None:
    clock = FakeClock(6000.0)
    with GreenLakeSimulator(per_hour=0, rate_limit=3, rate_overall=5, clock=clock) as s:
        ws = next(iter(s.workspaces.values()))
        a, b = s.add_client(ws.id), s.add_client(ws.id)
        ha, hb = token(s, a), token(s, b)
        statuses = [get(s, ha, limit=1) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[0].headers["ratelimit-remaining"] == "2"
        assert statuses[2].headers["ratelimit-remaining"] == "0"
        throttled = statuses[3]
        assert set(throttled.json()) == ERROR_FIELDS  # 429 bodies carry the four required fields only
        assert throttled.headers["ratelimit-reset"] == "60" and throttled.headers["ratelimit-remaining"] == "0"
        assert [get(s, hb, limit=1).status_code for _ in range(3)] == [200, 200, 429]  # overall 5 reached
        clock.now += 60
        assert get(s, ha, limit=1).status_code == 200


def test_detail_endpoints_per_version(sim) -> None:
    client = first_client(sim)
    headers = token(sim, client)
    for version, good, bad, kind in (("v1", "detail", "details", "audit_details"), ("v2beta1", "details", "detail", "/audit-log/log/details")):
        items = get(sim, headers, version, filter=f"{WINDOW} and hasDetails eq 'true'", limit=1).json()["items"]
        log_id = items[0]["id"]
        resp = requests.get(f"{sim.url}/audit-log/{version}/logs/{log_id}/{good}", headers=headers, timeout=10)
        assert resp.status_code == 200
        assert resp.json()["id"] == log_id and resp.json()["type"] == kind and isinstance(resp.json()["body"], list)
        assert requests.get(f"{sim.url}/audit-log/{version}/logs/{log_id}/{bad}", headers=headers, timeout=10).status_code == 404
        plain = get(sim, headers, version, filter=f"{WINDOW} and hasDetails eq 'false'", limit=1).json()["items"][0]["id"]
        assert requests.get(f"{sim.url}/audit-log/{version}/logs/{plain}/{good}", headers=headers, timeout=10).status_code == 404
    one = get(sim, headers, "v2beta1", filter=WINDOW, limit=1).json()["items"][0]
    assert requests.get(f"{sim.url}/audit-log/v2beta1/logs/{one['id']}", headers=headers, timeout=10).json() == one
    other = token(sim, first_client(sim, "MSP"))
    assert requests.get(f"{sim.url}/audit-log/v2beta1/logs/{one['id']}", headers=other, timeout=10).status_code == 404


def test_data_is_deterministic_per_seed_and_varied() -> None:
    a, b, c = GreenLakeSimulator(seed=1), GreenLakeSimulator(seed=1), GreenLakeSimulator(seed=2)
    ws_a = next(iter(a.workspaces))
    assert ws_a == next(iter(b.workspaces)) != next(iter(c.workspaces))
    span = (T0, T0 + dt.timedelta(hours=6))
    ra, rb = a.records(ws_a, "v1", *span), b.records(ws_a, "v1", *span)
    assert ra == rb and len(ra) > 20
    assert len({r["category"] for r in ra}) >= 4
    assert {w.type for w in a.workspaces.values()} == {"STANDALONE", "MSP", "TENANT"}
    stamps = {r["createdAt"][19:] for r in ra}
    assert "Z" in stamps and any(len(s) == 3 for s in stamps) and any(len(s) == 5 for s in stamps)  # varied fraction digits
