"""Carbon Black Cloud descriptions: outcome, action, object and the Elastic-parity ECS fields.

The records are written here; the descriptions follow the console's wording
(quoted names, e-mail addresses, ten-character API IDs).
"""

import pytest
from hypothesis import given, strategies as st

from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.ecs import to_ecs
from forwarder.es_templates import FIELD_TYPES, mappings
from forwarder.sources.carbon_black_cloud import CarbonBlackCloudSource
from forwarder.sources.carbon_black_cloud_description import describe
from forwarder.state import MemoryStore
from tests.servers.elasticsearch import _Mapper

SECRET_ENV = "CBDESC_SECRET"


@pytest.fixture(scope="module")
def source():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SECRET_ENV, "s3cret")
        cfg = parse_config({"source": [{"name": "cb", "type": "carbon_black_cloud", "base_url": "https://cbc.example",
                                        "org_key": "ORG1", "api_id": "ID", "api_secret": f"env:{SECRET_ENV}"}]}).sources[0]
        yield CarbonBlackCloudSource(cfg, MemoryStore(), "/nonexistent")


def record(description, flagged=None, **extra):
    r = {"org_key": "ORG1", "actor": "alice@example.com", "actor_ip": "198.51.100.7",
         "description": description, "create_time": "2025-06-01T10:00:00.123Z", **extra}
    if flagged is not None:
        r["flagged"] = flagged
    return r


# (description, flagged or None when absent) → action, category, outcome, event.type, (target type, id, name)
CASES = [
    ("Updated policy 'Denied apps'", False, "update", "configuration", "success", ["change"], ("policy", None, "Denied apps")),
    ("Updated report, 'Invalid certificate watchlist'", False, "update", "configuration", "success", ["change"],
     ("report", None, "Invalid certificate watchlist")),
    ("Added user bob@example.com", False, "create", "iam", "success", ["creation", "user"], ("user", None, "bob@example.com")),
    ("Created API key 'SIEM export' with API ID ABCDEFGHIJ", False, "create", "iam", "success", ["creation", "admin"],
     ("api_key", "ABCDEFGHIJ", "SIEM export")),
    ("Created API key DEFGHIJKLM with access level 'Audit Reader'", False, "create", "iam", "success", ["creation", "admin"],
     ("api_key", "DEFGHIJKLM", None)),
    ("User alice@example.com retrieved secret for API ID DEFGHIJKLM", False, "retrieve", "iam", "success", ["admin"],
     ("api_key", "DEFGHIJKLM", None)),
    ("Downloaded sensor kit for Windows 64-bit", False, "download", "configuration", "success", ["access"], ("sensor_kit", None, None)),
    ("Logged in successfully", None, "login", "authentication", "success", ["start"], (None, None, None)),
    ("Log in failed for user bob@example.com", None, "login", "authentication", "failure", ["start"], (None, None, None)),
    ("Deleted role 'Failed login responders'", False, "delete", "iam", "success", ["deletion", "admin"],
     ("role", None, "Failed login responders")),
    ("Removed user carol@example.org from role 'Analyst'", False, "delete", "iam", "success", ["deletion", "user"],
     ("user", None, "carol@example.org")),
    ("Deleted API key created by bob@example.com (ID QRSTUVWXYZ)", None, "delete", "iam", "success", ["deletion", "admin"],
     ("api_key", "QRSTUVWXYZ", None)),
    ("Updated access level 'Invalid users'", None, "update", "iam", "success", ["change", "admin"],
     ("access_level", None, "Invalid users")),
    ("Connector DEFGHIJKLM logged in successfully", False, "login", "authentication", "success", ["start"], (None, None, None)),
    ("Deleted device WIN-1", True, "delete", "configuration", "failure", ["deletion"], ("device", None, None)),
    ("Failed to update policy 'Standard'", None, "update", "configuration", "failure", ["change"], ("policy", None, "Standard")),
]


@pytest.mark.parametrize("description, flagged, action, category, outcome, types, target", CASES)
def test_meaning_of_representative_descriptions(source, description, flagged, action, category, outcome, types, target):
    event = source.normalize(record(description, flagged))
    assert (event.action, event.category, event.outcome) == (action, category, outcome)
    assert (event.target.type, event.target.id, event.target.name) == target
    assert to_ecs(event)["event"]["type"] == types


def test_flagged_decides_over_the_wording_and_the_wording_is_only_a_fallback(source):
    failing_words = "Login failed: invalid password"
    assert source.normalize(record(failing_words, False)).outcome == "success"
    assert source.normalize(record(failing_words)).outcome == "failure"
    assert source.normalize(record("Updated policy 'Standard'", True)).outcome == "failure"
    assert source.normalize(record("Updated policy 'Standard'")).outcome == "success"


_NAME = st.text(st.characters(blacklist_characters="'\"", blacklist_categories=("Cs",)), max_size=40)


@given(_NAME)
def test_a_quoted_name_never_decides_anything(name):
    meaning = describe(f"Updated policy '{name}'")
    assert (meaning.action, meaning.category, meaning.says_failed) == ("update", "configuration", False)
    assert (meaning.target_type, meaning.target_name) == ("policy", name or None)


@given(st.text(max_size=80))
def test_any_description_has_a_meaning(text):
    meaning = describe(text)
    assert meaning.category in ("authentication", "session", "iam", "configuration")


def test_ecs_document_matches_what_elastic_integration_queries_expect(source):
    event = source.normalize(record("Updated report, 'Invalid certificate watchlist'", False, verbose=True))
    doc = to_ecs(event)
    assert doc["client"] == {"ip": "198.51.100.7", "user": {"id": "alice@example.com"}}
    assert doc["source"] == {"ip": "198.51.100.7"}
    assert doc["event"]["reason"] == "Updated report, 'Invalid certificate watchlist'"
    assert doc["event"]["outcome"] == "success"
    ns = doc["carbon_black_cloud"]["audit"]
    assert ns["flagged"] is False and ns["verbose"] is True and "details" not in ns
    assert ns["target"] == {"type": "report", "name": "Invalid certificate watchlist"}
    assert "cloud" not in doc  # Carbon Black Cloud is no cloud provider in ECS's sense
    for field in ("client.user.id", "event.reason"):
        assert FIELD_TYPES[field] == "keyword"
    for field in ("flagged", "verbose"):
        assert FIELD_TYPES[f"carbon_black_cloud.audit.{field}"] == "boolean"
    mapper = _Mapper(mappings(), event.id, ignore_malformed=False)
    mapper.parse(jsoncodec.loads(jsoncodec.dumps(doc)))
    assert not mapper.pending and not mapper.ignored


def test_other_vendors_keep_cloud_fields_and_no_reason():
    from forwarder.event import AuditEvent

    doc = to_ecs(AuditEvent.build(vendor="crusoe", product="audit", raw={}, timestamp=0, message="x", tenant_id="t"))
    assert doc["cloud"]["provider"] == "crusoe" and "reason" not in doc["event"] and "client" not in doc
