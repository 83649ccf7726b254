"""The Carbon Black Cloud simulator is as strict as the service: auth, grammar, queues, jobs, rate limit."""

import datetime as dt
import time

import pytest
import requests

from forwarder.config import parse_config
from forwarder.simulators.carbon_black_cloud import AUDITS, DEMO_API_ID, DEMO_SECRET, CarbonBlackCloudSimulator
from forwarder.timeutil import UTC, format_time, parse_time

A = dt.datetime(2025, 3, 1, tzinfo=UTC)
TOKEN = f"{DEMO_SECRET}/{DEMO_API_ID}"


@pytest.fixture
def sim():
    with CarbonBlackCloudSimulator(seed=7, retention=20 * 365 * 86400.0, queue_batch=50) as s:
        yield s


def call(sim, method, path, body=None, token=TOKEN, org="SIMORG01"):
    headers = {"X-Auth-Token": token} if token is not None else {}
    prefix = "/jobs/v1" if path.startswith("jobs") else "/audit_log/v1"
    url = f"{sim.url}{prefix}/orgs/{org}/{path}"
    return requests.request(method, url, json=body, headers=headers, timeout=10)


def window(a=A, minutes=60, **extra):
    return {"criteria": {"create_time": {"start": format_time(a, 6), "end": format_time(a + dt.timedelta(minutes=minutes), 6)}}, **extra}


# -- auth -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "token, org, status",
    [
        (None, "SIMORG01", 401),
        (DEMO_SECRET, "SIMORG01", 401),  # no "/<api id>"
        (f"wrong/{DEMO_API_ID}", "SIMORG01", 401),
        (f"{DEMO_SECRET}/NOSUCHKEY", "SIMORG01", 401),
        (f"{DEMO_API_ID}/{DEMO_SECRET}", "SIMORG01", 401),  # id and secret swapped
        (TOKEN, "OTHERORG", 403),
    ],
    ids=["missing", "no-api-id", "wrong-secret", "unknown-id", "swapped", "other-org"],
)
def test_auth_is_enforced(sim, token, org, status):
    assert call(sim, "POST", "logs/_search", window(), token=token, org=org).status_code == status


def test_header_name_is_case_insensitive(sim):
    resp = requests.post(f"{sim.url}/audit_log/v1/orgs/SIMORG01/logs/_search", json=window(),
                         headers={"X-AUTH-TOKEN": TOKEN}, timeout=10)
    assert resp.status_code == 200


def test_permissions_are_enforced(sim):
    token = sim.add_key("AUDITONLY1", "secret-audit-only", permissions=(AUDITS,))
    assert call(sim, "POST", "logs/_search", window(), token=token).status_code == 200
    job = call(sim, "POST", "logs/_export", {**window(), "format": "json"}, token=token).json()["job_id"]
    assert call(sim, "GET", f"jobs/{job}", token=token).status_code == 403
    none = sim.add_key("NOPERMS001", "secret-none", permissions=())
    assert call(sim, "GET", "logs/_queue", token=none).status_code == 403


# -- search grammar -------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"criteria": {"create_time": {"range": "-1h", "start": "2025-03-01T00:00:00Z"}}},
        {"criteria": {"create_time": {"start": "2025-03-01T00:00:00Z"}}},
        {"criteria": {"create_time": {"range": "-1x"}}},
        {"criteria": {"create_time": {"start": 1, "end": 2}}},
        {"criteria": {"actor": "alice"}},
        {"criteria": {"flagged": "true"}},
        {"criteria": {"severity": ["x"]}},
        {"exclusions": {"actor_ip": [1]}},
        {"rows": 0},
        {"rows": 10001},
        {"start": -1},
        {"sort": [{"field": "create_time", "order": "asc"}]},
        {"sort": [{"field": "nope", "order": "ASC"}]},
        {"query": "severity:high"},
        {"limit": 10},
        [1, 2],
    ],
)
def test_bad_search_bodies_are_400(sim, body):
    resp = call(sim, "POST", "logs/_search", body)
    assert resp.status_code == 400 and resp.json()["message"]


def test_non_json_body_is_400(sim):
    resp = requests.post(f"{sim.url}/audit_log/v1/orgs/SIMORG01/logs/_search", data=b"{nope",
                         headers={"X-Auth-Token": TOKEN}, timeout=10)
    assert resp.status_code == 400


def test_search_pages_with_rows_and_start_and_sorts_as_asked(sim):
    expected = sim.records_between(A, A + dt.timedelta(minutes=60))
    sort = [{"field": "create_time", "order": "ASC"}]
    got, start = [], 0
    while True:
        doc = call(sim, "POST", "logs/_search", window(rows=7, start=start, sort=sort)).json()
        got += doc["results"]
        start += len(doc["results"])
        if not doc["results"] or start >= doc["num_found"]:
            break
    assert doc["num_found"] == doc["num_available"] == len(got)
    assert got == expected


def test_search_without_sort_answers_newest_first(sim):
    doc = call(sim, "POST", "logs/_search", window(minutes=10)).json()
    times = [r["create_time"] for r in doc["results"]]
    assert times == sorted(times, reverse=True) and len(set(times)) > 1


def test_search_time_bounds_are_inclusive(sim):
    records = sim.records_between(A, A + dt.timedelta(minutes=30))
    low, high = records[3]["create_time"], records[9]["create_time"]
    body = {"criteria": {"create_time": {"start": low, "end": high}}, "sort": [{"field": "create_time", "order": "ASC"}]}
    got = call(sim, "POST", "logs/_search", body).json()["results"]
    assert got[0]["create_time"] == low and got[-1]["create_time"] == high


def test_search_criteria_exclusions_and_query(sim):
    everything = sim.records_between(A, A + dt.timedelta(minutes=60))
    body = window(criteria={**window()["criteria"], "actor": ["alice@example.com"]}, exclusions={"flagged": True},
                  query='description:"logged in"', rows=1000)
    got = call(sim, "POST", "logs/_search", body).json()["results"]
    expected = [r for r in everything if r["actor"] == "alice@example.com" and not r["flagged"] and "logged in" in r["description"]]
    assert got and sorted(r["create_time"] for r in got) == sorted(r["create_time"] for r in expected)


def test_range_criteria_counts_back_from_now(sim):
    doc = call(sim, "POST", "logs/_search", {"rows": 1, "criteria": {"create_time": {"range": "-1h"}}}).json()
    assert 55 <= doc["num_found"] <= 61 and len(doc["results"]) == 1


# -- queue ----------------------------------------------------------------------------
def test_queue_is_destructive_per_key_and_starts_three_days_back(sim):
    first = call(sim, "GET", "logs/_queue").json()["results"]
    second = call(sim, "GET", "logs/_queue").json()["results"]
    assert len(first) == len(second) == 50
    assert not [r for r in first if r in second]
    assert [r["create_time"] for r in first] == sorted((r["create_time"] for r in first), reverse=True)
    oldest = min(parse_time(r["create_time"]) for r in first)
    three_days = dt.datetime.now(UTC) - dt.timedelta(days=3)
    assert dt.timedelta(0) <= oldest - three_days < dt.timedelta(minutes=3)
    assert all("flagged" not in r or r["flagged"] for r in first)  # false flags are omitted, as in the vendor sample
    other = sim.add_key("SECONDKEY1", "second-secret")
    dup = call(sim, "GET", "logs/_queue", token=other).json()["results"]
    assert dup == first  # another key gets its own copy of the stream: duplicates
    assert sim.handed_out[DEMO_API_ID] == first[::-1] + second[::-1]  # oldest first, as generated


# -- export jobs -----------------------------------------------------------------------
def test_export_job_lifecycle(sim):
    assert call(sim, "POST", "logs/_export", window()).status_code == 400  # format is required
    job = call(sim, "POST", "logs/_export", {**window(), "format": "json"}).json()["job_id"]
    assert call(sim, "GET", f"jobs/{job}/download").status_code == 400
    assert call(sim, "GET", f"jobs/{job}").json()["status"] == "CREATED"
    found = call(sim, "POST", "logs/_search", window(rows=1000)).json()["results"]  # newest first, like the export
    progress = call(sim, "GET", f"jobs/{job}/progress").json()
    assert progress["num_total"] == len(found) > 50 and 0 <= progress["num_completed"] < len(found)
    status = call(sim, "GET", f"jobs/{job}").json()
    assert status["status"] == "COMPLETED" and status["id"] == job and status["org_key"] == "SIMORG01"
    assert call(sim, "GET", f"jobs/{job}/progress").json()["num_completed"] == len(found)
    assert call(sim, "GET", f"jobs/{job}/download").json() == found
    csv_job = call(sim, "POST", "logs/_export", {**window(), "format": "csv"}).json()["job_id"]
    call(sim, "GET", f"jobs/{csv_job}"), call(sim, "GET", f"jobs/{csv_job}")
    text = call(sim, "GET", f"jobs/{csv_job}/download").text
    assert text.splitlines()[0].startswith("create_time,") and len(text.splitlines()) == len(found) + 1
    sim.expire_jobs()
    assert call(sim, "GET", f"jobs/{job}").status_code == 404


# -- rate limit ---------------------------------------------------------------------------
def test_sliding_window_rate_limit_with_retry_after_and_extension():
    with CarbonBlackCloudSimulator(rate_limit=3, rate_window=1.0) as sim:
        body = {"rows": 1, "criteria": {"create_time": {"range": "-1h"}}}
        assert [call(sim, "POST", "logs/_search", body).status_code for _ in range(3)] == [200, 200, 200]
        throttled = call(sim, "POST", "logs/_search", body)
        assert throttled.status_code == 429
        wait = float(throttled.headers["Retry-After"])
        assert 0 < wait <= 1.0
        again = call(sim, "POST", "logs/_search", body)  # inside the block: refused, and the block starts over
        assert again.status_code == 429 and sim.requests_in_block == 1
        time.sleep(float(again.headers["Retry-After"]) + 0.05)
        assert call(sim, "POST", "logs/_search", body).status_code == 200


# -- data -----------------------------------------------------------------------------------
def test_data_is_deterministic_per_seed():
    with CarbonBlackCloudSimulator(seed=1) as one, CarbonBlackCloudSimulator(seed=1) as same, CarbonBlackCloudSimulator(seed=2) as other:
        a, b = A - dt.timedelta(days=400), A - dt.timedelta(days=399)
        assert one.records_between(a, b) == same.records_between(a, b) != other.records_between(a, b)


def test_demo_source_is_a_valid_source_table(sim, monkeypatch):
    table, env = sim.demo_source(100)
    monkeypatch.setenv(*next(iter(env.items())))
    (source,) = parse_config({"source": [table]}).sources
    assert source.type == "carbon_black_cloud" and source.lookback == 100 * sim.spacing


def test_records_sharing_a_millisecond_still_have_distinct_ids():
    from forwarder.sources.carbon_black_cloud import record_key

    with CarbonBlackCloudSimulator(seed=1, spacing=1.0, retention=20 * 365 * 86400.0) as sim:
        records = sim.records_between(A, A + dt.timedelta(hours=3))
    ties = [(a, b) for a, b in zip(records, records[1:]) if a["create_time"] == b["create_time"]]
    assert len(ties) > 300
    assert all(a["actor_ip"] != b["actor_ip"] for a, b in ties)
    assert len({record_key(r, "ORG") for r in records}) == len(records)
