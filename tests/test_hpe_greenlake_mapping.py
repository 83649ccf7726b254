"""GreenLake record → AuditEvent, field by field, for both API versions (records shaped like HPE's samples)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from forwarder.config import parse_config
from forwarder.ecs import to_ecs
from forwarder.errors import RecordError
from forwarder.event import content_hash
from forwarder.sources.hpe_greenlake import DETAIL_KEY, GreenLakeSource, action_of, event_category, outcome_of
from forwarder.state import MemoryStore

UTC = dt.timezone.utc

V1 = {
    "id": "497f6eca-6276-4993-bfeb-53cbbbba6f08",
    "type": "/audit-log/logs",
    "user": {"username": "example@test.com"},
    "application": {"id": "59812345678904f7861"},
    "region": "us-west",
    "category": "User Management",
    "description": "User test@dummy.com logged in via ping mode.",
    "workspace": {"id": "565c6efa-6276-4993-31t4-aa345h3a9803", "workspaceName": "HPE GreenLake"},
    "createdAt": "2019-08-24T14:15:22Z",
    "updatedAt": "2019-08-24T14:15:22Z",
    "additionalInfo": {"ipAddress": "104.36.31.11"},
    "hasDetails": True,
    "generation": 1,
}
V2 = {
    "id": "8RtJaZQBITMTdBbBUxzz",
    "type": "/audit-log/log",
    "serviceOffer": {"id": "68067533-5764-401a-9620-24e6e2cdc574", "name": "Backup and Recovery", "region": "us-east"},
    "username": "testuser@test.com",
    "category": "Storage settings",
    "description": "Storage firmware updated",
    "workspace": {"id": "3e35c938fb5911edbb4c660832a054ff", "name": "workspace name", "type": "STANDALONE"},
    "createdAt": "2024-02-10T07:54:55.0Z",
    "ipAddress": "192.168.11.21",
    "additionalInfo": {"serverName": "test"},
    "hasDetails": True,
}


@pytest.fixture(params=["v1", "v2beta1"])
def version(request) -> str:
    return request.param


def source(version: str, tmp_path, monkeypatch) -> GreenLakeSource:
    monkeypatch.setenv("GL_MAP_SECRET", "not-used-here")
    config = parse_config({
        "source": [{"name": "gl", "type": "hpe_greenlake", "workspace_id": "w", "client_id": "c",
                    "client_secret": "env:GL_MAP_SECRET", "api_version": version}],
    })
    return GreenLakeSource(config.sources[0], MemoryStore(), tmp_path)


@pytest.fixture
def v1(tmp_path, monkeypatch) -> GreenLakeSource:
    return source("v1", tmp_path, monkeypatch)


@pytest.fixture
def v2(tmp_path, monkeypatch) -> GreenLakeSource:
    return source("v2beta1", tmp_path, monkeypatch)


def test_v1_fields(v1: GreenLakeSource) -> None:
    e = v1.normalize(copy.deepcopy(V1))
    assert (e.vendor, e.product, e.dataset) == ("hpe_greenlake", "audit", "hpe_greenlake.audit")
    assert e.id == content_hash(V1["id"], 1)  # records are updated in place: generation is part of the id
    assert e.timestamp == dt.datetime(2019, 8, 24, 14, 15, 22, tzinfo=UTC)
    assert (e.tenant_id, e.tenant_name) == ("565c6efa-6276-4993-31t4-aa345h3a9803", "HPE GreenLake")  # opaque, not validated
    assert (e.actor.name, e.actor.email, e.actor.type, e.actor.id) == ("example@test.com", "example@test.com", "user", None)
    assert e.source.ip == "104.36.31.11"
    assert (e.action, e.category, e.outcome) == ("login", "authentication", "unknown")
    assert e.region == "us-west"
    assert e.message == V1["description"]
    assert e.details == {
        "record_id": V1["id"], "category": "User Management", "service_offer": {"id": "59812345678904f7861", "region": "us-west"},
        "additional_info": {"ipAddress": "104.36.31.11"}, "has_details": True, "generation": 1, "updated_at": "2019-08-24T14:15:22Z",
    }
    assert e.target.type is None and e.url is None
    assert e.raw == V1


def test_v2_fields(v2: GreenLakeSource) -> None:
    e = v2.normalize(copy.deepcopy(V2))
    assert e.id == "8RtJaZQBITMTdBbBUxzz"
    assert e.timestamp == dt.datetime(2024, 2, 10, 7, 54, 55, tzinfo=UTC)
    assert (e.tenant_id, e.tenant_name) == ("3e35c938fb5911edbb4c660832a054ff", "workspace name")
    assert (e.actor.name, e.actor.email, e.actor.type) == ("testuser@test.com", "testuser@test.com", "user")
    assert e.source.ip == "192.168.11.21"
    assert (e.action, e.category, e.outcome) == ("update", "configuration", "unknown")
    assert e.region == "us-east"
    assert e.message == "Storage firmware updated"
    assert (e.target.type, e.target.id, e.target.name) == ("server", None, "test")
    assert e.details == {
        "record_id": V2["id"], "category": "Storage settings",
        "service_offer": {"id": "68067533-5764-401a-9620-24e6e2cdc574", "name": "Backup and Recovery", "region": "us-east"},
        "workspace_type": "STANDALONE", "additional_info": {"serverName": "test"}, "has_details": True,
    }


def test_v1_generation_changes_the_id_and_updated_record_keeps_record_id(v1: GreenLakeSource) -> None:
    updated = {**copy.deepcopy(V1), "generation": 2, "updatedAt": "2019-08-24T15:00:00Z"}
    a, b = v1.normalize(copy.deepcopy(V1)), v1.normalize(updated)
    assert a.id != b.id and a.details["record_id"] == b.details["record_id"]
    no_generation = {k: v for k, v in V1.items() if k != "generation"}
    assert v1.normalize(no_generation).id == V1["id"]


def test_invalid_ip_is_kept_in_details_not_in_source(version: str, tmp_path, monkeypatch) -> None:
    src = source(version, tmp_path, monkeypatch)
    record = copy.deepcopy(V1 if version == "v1" else V2)
    if version == "v1":
        record["additionalInfo"]["ipAddress"] = "104.36.311.11"  # as in HPE's own sample
    else:
        record["ipAddress"] = "104.36.311.11"
    e = src.normalize(record)
    assert e.source.ip is None and e.details["ip_address"] == "104.36.311.11"
    assert "source" not in to_ecs(e)


def test_ipv6_source(v2: GreenLakeSource) -> None:
    assert v2.normalize({**V2, "ipAddress": "2001:db8::1"}).source.ip == "2001:db8::1"


def test_actor_without_at_sign_is_not_an_email(v2: GreenLakeSource) -> None:
    e = v2.normalize({**V2, "username": "automation-client-7"})
    assert (e.actor.name, e.actor.email, e.actor.type) == ("automation-client-7", None, None)


def test_fetched_detail_goes_to_details_and_raw_stays_the_vendor_record(version: str, tmp_path, monkeypatch) -> None:
    src = source(version, tmp_path, monkeypatch)
    base = V1 if version == "v1" else V2
    detail = {"id": base["id"], "type": "t", "header": "Storage Firmware Update", "body": ["Firmware version: 1.2.3", "Update status: Successful"]}
    record = {**copy.deepcopy(base), DETAIL_KEY: detail}
    e = src.normalize(record)
    assert e.details["detail"] == detail
    assert e.raw == base and DETAIL_KEY in record  # the page's record is not mutated
    assert e.outcome == "success"  # the detail body says so


def test_device_additional_info_becomes_the_target(v2: GreenLakeSource) -> None:
    info = {"deviceType": "SWITCH", "serverSerial": "SG123"}
    e = v2.normalize({**V2, "additionalInfo": info, "description": "Device SG123 archived."})
    assert (e.target.type, e.target.id, e.target.name) == ("SWITCH", "SG123", None)
    assert (e.action, e.category) == ("delete", "configuration")


@pytest.mark.parametrize(
    "record_update, problem",
    [({"id": ""}, "no id"), ({"id": None}, "no id"), ({"id": 5}, "no id")],
)
def test_records_without_id_are_refused(v2: GreenLakeSource, record_update: dict[str, Any], problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        v2.normalize({**V2, **record_update})


def test_records_without_a_usable_time_are_refused(v2: GreenLakeSource) -> None:
    with pytest.raises(RecordError, match="no createdAt"):
        v2.normalize({k: v for k, v in V2.items() if k != "createdAt"})
    with pytest.raises(ValueError, match="not a timestamp"):
        v2.normalize({**V2, "createdAt": "last tuesday"})


def test_missing_optional_fields_are_tolerated(v2: GreenLakeSource) -> None:
    e = v2.normalize({"id": "x1", "type": "/audit-log/log", "createdAt": "2024-02-10T07:54:55Z"})
    assert e.tenant_id is None and e.actor.name is None and e.source.ip is None and e.message is None
    assert (e.category, e.outcome, e.action) == ("configuration", "unknown", None)
    assert e.details == {"record_id": "x1"}


def test_odd_types_do_not_crash_normalization(v1: GreenLakeSource) -> None:
    e = v1.normalize({**V1, "user": "not-a-table", "workspace": ["x"], "additionalInfo": "text", "description": 42})
    assert e.actor.name is None and e.tenant_id is None and e.source.ip is None and e.message is None


def test_fraction_digits_vary(v2: GreenLakeSource) -> None:
    for stamp, micro in (("2024-02-10T07:54:55Z", 0), ("2024-02-10T07:54:55.1Z", 100_000), ("2024-02-10T07:54:55.123456789Z", 123_456)):
        assert v2.normalize({**V2, "createdAt": stamp}).timestamp.microsecond == micro


@pytest.mark.parametrize(
    "category, action, expected",
    [
        ("User Activity", None, "authentication"),
        ("User Management", "create", "iam"),
        ("User Management", "login", "authentication"),
        ("Customer Management", "create", "iam"),
        ("API Gateway", "create", "api"),
        ("Device Management", "update", "configuration"),
        ("Subscription Management", "create", "configuration"),
        ("Storage settings", "update", "configuration"),
        ("Role Permissions", None, "iam"),
        ("Network Configuration", "update", "network"),
        ("Something New", None, "configuration"),
        (None, None, "configuration"),
    ],
)
def test_category_table(category: str | None, action: str | None, expected: str) -> None:
    assert event_category(category, action) == expected


@pytest.mark.parametrize(
    "description, action",
    [
        ("User a@b.c logged in via ping mode.", "login"),
        ("User a@b.c logged out.", "logout"),
        ("Login failed for user a@b.c: invalid credentials.", "login"),
        ("User x invited to workspace W.", "create"),
        ("Device SG1 unassigned from Aruba Central.", "delete"),
        ("Device SG1 assigned to Aruba Central.", "update"),
        ("API client c credentials regenerated.", "update"),
        ("Subscription key K added.", "create"),
        ("Volume v deleted.", "delete"),
        ("Nothing to see", None),
    ],
)
def test_action_from_description(description: str, action: str | None) -> None:
    assert action_of(description) == action


@pytest.mark.parametrize(
    "text, outcome",
    [
        ("Login failed for user a@b.c", "failure"),
        ("Access denied", "failure"),
        ("Update unsuccessful", "failure"),
        ("Cluster upgraded successfully.", "success"),
        ("Update status: Successful", "success"),
        ("User logged in", "unknown"),
    ],
)
def test_outcome_from_words(text: str, outcome: str) -> None:
    assert outcome_of(text) == outcome


def test_export_row_v1_matches_the_blog_columns(v1: GreenLakeSource) -> None:
    row = v1.export_row(v1.normalize(copy.deepcopy(V1)))
    assert row["id"] == V1["id"] and row["type"] == "/audit-log/logs"
    assert (row["Username"], row["Workspace ID"], row["Workspace Name"]) == ("example@test.com", V1["workspace"]["id"], "HPE GreenLake")
    assert (row["Category"], row["Application ID"], row["Application Name"]) == ("User Management", "59812345678904f7861", None)
    assert (row["Generation"], row["Created At"], row["Updated At"]) == (1, V1["createdAt"], V1["updatedAt"])
    assert (row["IP Address"], row["Has Details"], row["Region"]) == ("104.36.31.11", True, "us-west")


def test_export_row_v2_maps_application_to_service_offer(v2: GreenLakeSource) -> None:
    row = v2.export_row(v2.normalize(copy.deepcopy(V2)))
    assert (row["Application ID"], row["Application Name"]) == ("68067533-5764-401a-9620-24e6e2cdc574", "Backup and Recovery")
    assert (row["Username"], row["IP Address"], row["Workspace Type"]) == ("testuser@test.com", "192.168.11.21", "STANDALONE")
    assert row["Generation"] is None and row["Event ID"] == V2["id"]
