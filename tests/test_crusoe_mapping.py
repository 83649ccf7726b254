"""Crusoe record → AuditEvent, field by field, plus config validation."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import given, strategies as st

from forwarder.config import parse_config
from forwarder.errors import ConfigError, RecordError
from forwarder.sources.crusoe import CrusoeSource, _time_text, as_list, category, outcome
from forwarder.state import MemoryStore

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
ORG = "de8f27fe-8438-45e7-a2c2-a2767660625f"

# The 2024 documentation example: list fields as bracketed strings.
DOC_2024 = {
    "action": "Start",
    "action_detail": "",
    "actor_id": "ab4a6b00-aa5f-408e-a9fb-ac6de5eb45ab",
    "actor_email": "john.smith@mycompany.com",
    "actor_type": "User",
    "client_ip": "10.192.200.155:12345",
    "end_time": "2024-07-21T23:10:29.157Z",
    "error_message": "",
    "locations": "[us-northcentral1-a]",
    "organization_id": "804bf3a2-81f2-4d78-9a9e-dc6a55ed33d8",
    "organization_name": "My Company",
    "project_id": "fc9hyy16-305c-k8fg-8d70-b474fec1f001",
    "project_name": "renewable-ocean-807",
    "target_ids": "[123e4567-e89b-12d3-a456-426614174000]",
    "target_names": "[my-vm]",
    "target_type": "VM",
    "result": "OK",
    "start_time": "2024-07-21T23:10:11.982Z",
    "surface": "Console",
}
# The 2025 sample: JSON arrays, org-level action.
SAMPLE_2025 = {
    "action": "Create",
    "action_detail": "",
    "actor_id": "be34759e-fa6b-41e0-bbe6-9159516c9613",
    "actor_email": "user@crusoeenergy.com",
    "actor_type": "User",
    "client_ip": "10.193.200.150:36338",
    "end_time": "2025-09-03T15:11:03.941Z",
    "error_message": "",
    "locations": [],
    "organization_id": "c594a031-5041-45ff-a72c-ba127c9884d1",
    "organization_name": "crusoe-dx-lab",
    "project_id": "",
    "project_name": "",
    "target_ids": [],
    "target_names": ["API access"],
    "target_type": "UserAccessToken",
    "result": "OK",
    "start_time": "2025-09-03T15:11:03.904Z",
    "surface": "Console",
}


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUSOE_TEST_SECRET", KEY)
    cfg = parse_config(
        {"source": [{"name": "c", "type": "crusoe", "organization_id": ORG, "access_key_id": "AK", "secret_key": "env:CRUSOE_TEST_SECRET"}]}
    )
    src = CrusoeSource(cfg.sources[0], MemoryStore(), tmp_path)
    yield src
    src.close()


def test_doc_2024_record_field_by_field(source):
    e = source.normalize(copy.deepcopy(DOC_2024))
    assert (e.vendor, e.product, e.dataset) == ("crusoe", "audit", "crusoe.audit")
    assert e.timestamp == dt.datetime(2024, 7, 21, 23, 10, 11, 982000, tzinfo=dt.timezone.utc)
    assert (e.tenant_id, e.tenant_name) == ("804bf3a2-81f2-4d78-9a9e-dc6a55ed33d8", "My Company")
    assert (e.action, e.outcome, e.category) == ("Start", "success", "configuration")
    assert (e.actor.id, e.actor.name, e.actor.email, e.actor.type) == (
        "ab4a6b00-aa5f-408e-a9fb-ac6de5eb45ab", "john.smith@mycompany.com", "john.smith@mycompany.com", "User",
    )
    assert (e.source.ip, e.source.port) == ("10.192.200.155", 12345)
    assert (e.target.type, e.target.id, e.target.name) == ("VM", "123e4567-e89b-12d3-a456-426614174000", "my-vm")
    assert e.region == "us-northcentral1-a"
    assert e.message == "john.smith@mycompany.com Start VM my-vm via Console: OK"
    assert e.details == {
        "surface": "Console",
        "result": "OK",
        "end_time": "2024-07-21T23:10:29.157Z",
        "project_id": "fc9hyy16-305c-k8fg-8d70-b474fec1f001",
        "project_name": "renewable-ocean-807",
        "locations": ["us-northcentral1-a"],
        "target_ids": ["123e4567-e89b-12d3-a456-426614174000"],
        "target_names": ["my-vm"],
    }
    assert e.raw == DOC_2024 and len(e.id) == 64


def test_export_row_has_every_column(source):
    row = source.export_row(source.normalize(copy.deepcopy(DOC_2024)))
    assert list(row) == list(source.EXPORT_COLUMNS)
    assert (row["project"], row["surface"], row["result"], row["client_port"]) == ("renewable-ocean-807", "Console", "OK", 12345)
    assert (row["source_ip"], row["actor"], row["target"]) == ("10.192.200.155", "john.smith@mycompany.com", "my-vm")


def test_sample_2025_record(source):
    e = source.normalize(copy.deepcopy(SAMPLE_2025))
    assert e.category == "iam"
    assert (e.target.type, e.target.id, e.target.name) == ("UserAccessToken", None, "API access")
    assert e.region is None
    assert "project_id" not in e.details and e.details["locations"] == [] and e.details["target_names"] == ["API access"]
    assert (e.source.ip, e.source.port) == ("10.193.200.150", 36338)


def test_id_is_deterministic_and_survives_list_drift(source):
    as_arrays = dict(DOC_2024, locations=["us-northcentral1-a"], target_ids=["123e4567-e89b-12d3-a456-426614174000"], target_names=["my-vm"])
    first = source.normalize(copy.deepcopy(DOC_2024))
    assert source.normalize(copy.deepcopy(DOC_2024)).id == first.id
    assert source.normalize(as_arrays).id == first.id
    assert source.normalize(dict(DOC_2024, result="Bad Request")).id != first.id
    assert source.normalize(dict(DOC_2024, start_time="2024-07-21T23:10:11.983Z")).id != first.id
    # A record without organization_id falls back to the configured organization.
    bare = {k: v for k, v in DOC_2024.items() if k != "organization_id"}
    assert source.normalize(bare).tenant_id == ORG


def test_failure_record_message_and_outcome(source):
    e = source.normalize(dict(DOC_2024, action="Update", action_detail="Attach Disk", result="Bad Request",
                              error_message="disk is in use", target_names="[my-vm, data-1]", target_ids="[a,b]"))
    assert e.outcome == "failure"
    assert e.message == "john.smith@mycompany.com Update (Attach Disk) VM my-vm, data-1 via Console: Bad Request - disk is in use"
    assert (e.target.id, e.target.name) == ("a", "my-vm")
    assert e.details["target_ids"] == ["a", "b"] and e.details["action_detail"] == "Attach Disk"


@pytest.mark.parametrize(
    "client_ip, ip, port",
    [("[2001:db8::1]:443", "2001:db8::1", 443), ("10.1.2.3:36338", "10.1.2.3", 36338), ("10.1.2.3", "10.1.2.3", None),
     ("2001:db8::7", "2001:db8::7", None)],
)
def test_client_ip_forms(source, client_ip, ip, port):
    e = source.normalize(dict(DOC_2024, client_ip=client_ip))
    assert (e.source.ip, e.source.port) == (ip, port)


def test_client_ip_that_is_no_ip_is_kept_whole(source):
    e = source.normalize(dict(DOC_2024, client_ip=" unknown "))
    assert (e.source.ip, e.source.port) == ("unknown", None) and "client_ip" not in e.details
    assert source.normalize(dict(DOC_2024, client_ip="")).source.ip is None


@pytest.mark.parametrize(
    "value, expected",
    [(["a", "b"], ["a", "b"]), ("[a,b]", ["a", "b"]), ("[a, b ]", ["a", "b"]), ("[]", []), ("", []), (None, []),
     ([], []), ("[API access]", ["API access"]), ("plain", ["plain"]), ([1], ["1"])],
)
def test_list_fields(value, expected):
    assert as_list(value, "f") == expected


@pytest.mark.parametrize("value", [{"a": 1}, [{"a": 1}], [None], 5])
def test_list_fields_of_the_wrong_shape_are_refused(value):
    with pytest.raises(RecordError):
        as_list(value, "target_ids")


@pytest.mark.parametrize(
    "result, error, expected",
    [("OK", "", "success"), ("Created", "", "success"), ("200", "", "success"), ("Bad Request", "", "failure"),
     ("Internal Server Error", "", "failure"), ("403", "", "failure"), ("OK", "partial failure", "failure"),
     ("", "", "unknown"), ("Pending", "", "unknown"), ("", "boom", "failure")],
)
def test_outcome(result, error, expected):
    assert outcome(result, error) == expected


@pytest.mark.parametrize(
    "action, target_type, expected",
    [("Login", "User", "authentication"), ("Create", "UserAccessToken", "iam"), ("Delete", "SSHKey", "iam"),
     ("Update", "VPCFirewallRule", "network"), ("Create", "VPC Network", "network"), ("Start", "VM", "configuration"),
     ("Create", None, "configuration")],
)
def test_category(action, target_type, expected):
    assert category(action, target_type) == expected


@pytest.mark.parametrize(
    "change, needle",
    [({"start_time": "yesterday"}, "start_time"), ({"start_time": None}, "start_time"), ({"action": ""}, "action"),
     ({"target_ids": {"x": 1}}, "target_ids"), ({"target_type": ["VM"]}, "target_type")],
)
def test_malformed_records_raise(source, change, needle):
    with pytest.raises(RecordError) as err:
        source.normalize(dict(DOC_2024, **change))
    assert needle in str(err.value)


def test_non_object_record_raises(source):
    with pytest.raises(RecordError):
        source.normalize(["not", "a", "record"])  # type: ignore[arg-type]


def _config(monkeypatch, **extra):
    monkeypatch.setenv("CRUSOE_TEST_SECRET", extra.pop("secret", KEY))
    table = {"name": "c", "type": "crusoe", "organization_id": ORG, "access_key_id": "AK", "secret_key": "env:CRUSOE_TEST_SECRET", **extra}
    return parse_config({"source": [table]})


def test_config_defaults_and_filters(monkeypatch):
    cfg = _config(monkeypatch, actions=["Create", "Update"], surfaces="Console")
    o = cfg.sources[0].options
    assert (o["base_url"], o["api_version"], o["limit"]) == ("https://api.crusoecloud.com", "v1alpha5", 1000)
    assert o["actions"] == ["Create", "Update"] and o["surfaces"] == ["Console"]


@pytest.mark.parametrize(
    "extra, key",
    [({"organization_id": "my-org"}, "organization_id"), ({"secret": "not base64 at all!"}, "secret_key"),
     ({"api_version": "latest"}, "api_version"), ({"window": "5s", "overlap": "5s"}, "window"),
     ({"actions": [""]}, "actions"), ({"target_names": ["vm-1,vm-2"]}, "target_names"), ({"limit": 0}, "limit"), ({"base_url": "ftp://x"}, "base_url"),
     ({"bogus": 1}, "bogus")],
)
def test_config_errors_name_the_key_and_hide_the_secret(monkeypatch, extra, key):
    with pytest.raises(ConfigError) as err:
        _config(monkeypatch, **extra)
    assert key in str(err.value)
    assert "not base64 at all!" not in str(err.value)


@given(st.datetimes(min_value=dt.datetime(1, 1, 2), timezones=st.just(dt.timezone.utc)))
def test_time_text_is_the_microsecond_isoformat_whatever_the_spelling(value):
    """Ids hash record times in one spelling: the millisecond ``Z`` shortcut writes what the general path writes."""
    ms = value.replace(microsecond=value.microsecond // 1000 * 1000)
    for text in (ms.isoformat(timespec="milliseconds").replace("+00:00", "Z"), ms.isoformat(timespec="milliseconds"),
                 ms.isoformat(timespec="microseconds"), ms.astimezone(dt.timezone(dt.timedelta(hours=5))).isoformat()):
        assert _time_text(text) == ms.isoformat(timespec="microseconds")


@given(st.text(alphabet=" ,[]ab\t", max_size=12))
def test_list_text_is_split_the_same_with_or_without_the_one_item_shortcut(text):
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    assert as_list(text, "f") == [part.strip() for part in inner.split(",") if part.strip()]
