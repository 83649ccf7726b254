"""Progress Automate MFT: row mapping, field by field, and how report files are read."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forwarder.config import parse_config
from forwarder.errors import RecordError, SourceError
from forwarder.event import content_hash
from forwarder.sources.progress_mft import ProgressMftSource
from forwarder.state import MemoryStore

ROW = {
    "id": "a1b2c3",
    "timestamp": "2026-06-26T10:15:30.1234567Z",
    "actor": "alice@example.com",
    "actorType": "User",
    "action": "Delete",
    "resource": "Task",
    "resourceId": "task-42",
    "resourceName": "Nightly sync",
    "outcome": "Error",
    "sourceIp": "2001:db8::15",
    "message": "Deleted Task 'Nightly sync': permission denied",
    "correlationId": "c-9",
}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mft")
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    table = {"name": "mft", "type": "progress_mft", "base_url": "https://api.eu.mft.progress.com",
             "tenant_id": "tenant-1", "key_id": "kid-1", "private_key": f"file:{tmp / 'key.pem'}"}
    src = ProgressMftSource(parse_config({"source": [table]}).sources[0], MemoryStore(), tmp)
    yield src
    src.close()


def test_every_field_of_a_json_row(source):
    e = source.normalize(dict(ROW))
    assert e.id == "a1b2c3"
    assert e.vendor == "progress_mft" and e.product == "audit" and e.dataset == "progress_mft.audit"
    assert e.timestamp == dt.datetime(2026, 6, 26, 10, 15, 30, 123456, tzinfo=dt.timezone.utc)
    assert e.tenant_id == "tenant-1"
    assert e.action == "Task.Delete"
    assert e.outcome == "failure"
    assert e.category == "configuration"
    assert (e.actor.name, e.actor.email, e.actor.type, e.actor.id) == ("alice@example.com", "alice@example.com", "user", None)
    assert e.source.ip == "2001:db8::15"
    assert (e.target.type, e.target.id, e.target.name) == ("Task", "task-42", "Nightly sync")
    assert e.region == "eu"
    assert e.message == "Deleted Task 'Nightly sync': permission denied"
    assert e.details == {"correlationId": "c-9"}
    assert e.raw == ROW


def test_csv_headers_are_matched_loosely_and_give_the_same_event(source):
    text = "\ufeffId,Timestamp,Actor,Actor Type,Action,Resource,Resource Id,Resource Name,Outcome,Source IP,Message,Correlation Id\r\n"
    text += "a1b2c3,2026-06-26T10:15:30.1234567Z,alice@example.com,User,Delete,Task,task-42,Nightly sync,Error,2001:db8::15,\"Deleted Task 'Nightly sync': permission denied\",c-9\r\n"
    [row] = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    a, b = source.normalize(row), source.normalize(dict(ROW))
    for field in ("id", "timestamp", "action", "outcome", "category", "actor", "source", "target", "message"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.details == {"Correlation Id": "c-9"}


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"outcome": "Success"}, "outcome", "success"),
        ({"outcome": "Failure"}, "outcome", "failure"),
        ({"outcome": "Pending"}, "outcome", "unknown"),
        ({"outcome": None}, "outcome", "unknown"),
        ({"resource": "User"}, "category", "iam"),
        ({"resource": "PublicKey"}, "category", "iam"),
        ({"resource": "Folder"}, "category", "file"),
        ({"resource": "Schedule"}, "category", "configuration"),
        ({"resource": ""}, "action", "Delete"),
        ({"actorType": "ApiKey", "actor": "ci-pipeline"}, "actor", ("ci-pipeline", None, "api_key")),
        ({"actorType": "Service"}, "actor", ("alice@example.com", "alice@example.com", "service")),
        ({"message": ""}, "message", "Delete Task Nightly sync"),
        ({"sourceIp": "not-an-ip"}, "source", None),
        ({"timestamp": 1782468930}, "timestamp", dt.datetime(2026, 6, 26, 10, 15, 30, tzinfo=dt.timezone.utc)),
    ],
)
def test_field_mapping_variants(source, change, field, expected):
    e = source.normalize({**ROW, **change})
    value = getattr(e, field)
    if field == "actor":
        value = (value.name, value.email, value.type)
    elif field == "source":
        value = value.ip
        assert e.details["sourceIp"] == "not-an-ip"
    assert value == expected


def test_rows_without_id_get_a_composite_id_over_all_columns(source):
    row = {k: v for k, v in ROW.items() if k != "id"}
    e = source.normalize(row)
    assert len(e.id) == 64 and e.id == source.normalize(dict(row)).id
    assert e.id != source.normalize({**row, "correlationId": "c-10"}).id
    assert e.id != source.normalize({**row, "timestamp": "2026-06-26T10:15:31Z"}).id
    # Same data as text (CSV) and as typed JSON gives one id.
    assert source.normalize({**row, "size": 5}).id == source.normalize({**row, "size": "5"}).id
    assert e.id != content_hash("tenant-1", row)  # not the plain raw hash: independent of the file format


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"actor": "a@example.com"}, "no timestamp column"),
        ({"timestamp": "yesterday"}, "bad timestamp"),
        ({"timestamp": "2026-06-26T10:15:30Z", None: ["extra"]}, "more fields than the header"),
        (["not", "an", "object"], "not an object"),
    ],
)
def test_bad_rows_raise_record_errors(source, row, message):
    with pytest.raises(RecordError, match=message):
        source.normalize(row)


def test_json_report_files_are_read_with_the_items_wrapper_and_a_bom(source, tmp_path):
    path = tmp_path / "r1.json"
    path.write_text('\ufeff{\n  "items": [{"a": 1}, {"a": 2}]\n}\n', encoding="utf-8")
    assert list(source._rows({"id": "r1"}, path)) == [{"a": 1}, {"a": 2}]
    path.write_text('[{"a": 1},', encoding="utf-8")
    with pytest.raises(SourceError, match="report r1 is not valid JSON"):
        list(source._rows({"id": "r1"}, path))
