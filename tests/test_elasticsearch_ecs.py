"""The ECS mapping: allowed categorization values, and every field any vendor can emit is in our template."""

import ipaddress
import itertools

import pytest

from forwarder import jsoncodec, registry
from forwarder.ecs import ALLOWED_TYPES, ECS_VERSION, VENDOR_SHAPES, categorize, dataset, to_ecs
from forwarder.es_templates import FIELD_MAPPINGS, FIELD_TYPES, VENDORS, index_templates, mappings
from forwarder.event import CATEGORIES, Actor, AuditEvent, Endpoint, Target
from forwarder.timeutil import parse_time
from tests.servers.elasticsearch import EsError, _Mapper

ACTIONS = [None, "", "Create", "update_role", "DeleteUser", "Task.Create", "User test@x.com logged in via ping mode.",
           "Logged out", "Logged in successfully", "File.Download", "Start", "Stop", "Access denied", "list_vms",
           "Sign in failed", "Attach Disk", "whatever happened", "Reset password", "revoke api key", "Allow rule"]
TARGETS = [None, "User", "UserAccessToken", "Group", "VM", "Role", "KubernetesCluster"]


@pytest.mark.parametrize("category", [*CATEGORIES, *ALLOWED_TYPES, None, "nonsense"])
def test_categorization_uses_allowed_values_only(category):
    for action, target in itertools.product(ACTIONS, TARGETS):
        categories, types = categorize(category, action, target)
        assert categories and types
        assert all(c in ALLOWED_TYPES for c in categories)
        for t in types:
            assert any(t in ALLOWED_TYPES[c] for c in categories), (category, action, target, categories, types)


@pytest.mark.parametrize("category, action, target, expected", [
    ("authentication", "Logged in successfully", None, (("authentication",), ("start",))),
    ("authentication", "logout", None, (("authentication",), ("end",))),
    ("iam", "Create", "User", (("iam",), ("creation", "user"))),
    ("iam", "AddGroupMember", None, (("iam",), ("creation", "group"))),
    ("iam", "update_role", None, (("iam",), ("change", "admin"))),
    ("configuration", "Task.Create", "Task", (("configuration",), ("creation",))),
    ("file", "File.Download", None, (("file",), ("access",))),
    ("iam", "User a@b.c logged in via SSO", None, (("iam", "authentication"), ("start", "user"))),
    ("configuration", "Settings updated", None, (("configuration",), ("change",))),
    (None, "Something", None, (("api",), ("info",))),
    ("api", "address book opened", None, (("api",), ("access",))),  # "address" is not "add"
])
def test_categorization_examples(category, action, target, expected):
    assert categorize(category, action, target) == expected


def full_event(vendor, product, **over):
    """An event with every AuditEvent field set, details of every JSON shape."""
    fields = dict(
        vendor=vendor, product=product, raw={"client_ip": "192.0.2.7:5050", "nested": {"a": [1, 2]}},
        timestamp="2025-01-15T12:00:00.123456Z", vendor_id="abc-1", tenant_id="t-1", tenant_name="Tenant One",
        action="Create", outcome="failure", category="iam",
        actor=Actor(id="u-1", name="alice", email="alice@example.com", type="User"),
        source=Endpoint(ip="192.0.2.7", port=5050), target=Target(type="User", id="u-2", name="bob"),
        region="us-east1", url="https://api.example.com/v1/users?x=1", message="alice created bob",
        details={"s": "x", "n": 1, "f": 1.5, "b": True, "none": None, "list": ["a", "b"], "objs": [{"k": 1}],
                 "obj": {"deep": {"er": "v"}}, "empty": {}},
    )
    fields.update(over)
    return AuditEvent.build(**fields)


def leaves(doc, prefix=""):
    """(dotted path, value) of every leaf; a field mapped as flattened is one leaf."""
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if FIELD_TYPES.get(path) == "flattened":
            yield path, value
        elif isinstance(value, dict):
            yield from leaves(value, path + ".")
        elif isinstance(value, list):
            for item in value:
                yield path, item
        else:
            yield path, value


def fits(es_type, value):
    if es_type in ("keyword", "constant_keyword", "wildcard", "match_only_text"):
        return isinstance(value, str)
    if es_type == "ip":
        return isinstance(value, str) and ipaddress.ip_address(value) is not None
    if es_type == "date":
        return isinstance(value, str) and parse_time(value) is not None and value.endswith("Z")
    if es_type == "long":
        return isinstance(value, int) and not isinstance(value, bool)
    if es_type == "flattened":
        return isinstance(value, dict)
    if es_type == "boolean":
        return isinstance(value, bool)
    return False


def vendor_names():
    names = set(VENDORS)
    for name in registry.SOURCES:
        cls = registry.load("source", name)
        names.add((cls.VENDOR, cls.PRODUCT))
    return sorted(names)


def test_every_registered_source_has_a_namespace_in_the_template():
    for name in registry.SOURCES:
        cls = registry.load("source", name)
        assert (cls.VENDOR, cls.PRODUCT) in VENDORS, f"add ({cls.VENDOR!r}, {cls.PRODUCT!r}) to es_templates.VENDORS"


@pytest.mark.parametrize("vendor, product", vendor_names())
@pytest.mark.parametrize("variant", ["full", "bad_ip", "minimal"])
def test_every_emitted_field_is_mapped_with_a_fitting_type(vendor, product, variant):
    if variant == "full":
        event = full_event(vendor, product, details={**full_event(vendor, product).details, "flagged": True, "verbose": False})
    elif variant == "bad_ip":
        event = full_event(vendor, product, source=Endpoint(ip="104.36.311.11"), raw={"clientIp": "104.36.311.11"})
    else:
        event = AuditEvent.build(vendor=vendor, product=product, raw={}, timestamp=0)
    doc = to_ecs(event, "default")
    seen = set()
    for path, value in leaves(doc):
        assert path in FIELD_TYPES, f"{path} is written but not mapped"
        assert fits(FIELD_TYPES[path], value), f"{path} = {value!r} does not fit {FIELD_TYPES[path]}"
        seen.add(path)
    if variant == "full":
        assert {"client.ip", "client.port", "source.ip", "related.ip", "url.original",
                f"{vendor}.{product}.details", f"{vendor}.{product}.target.name"} <= seen
        assert ("cloud.account.id" in seen) == (vendor != "carbon_black_cloud")  # CB is no cloud provider
        shape = VENDOR_SHAPES.get(vendor)
        assert {f"{vendor}.{product}.{name}" for name in (shape.booleans if shape else ())} <= seen
    # The same document parses against our resolved mappings with nothing malformed and no new field.
    mapper = _Mapper(mappings(), event.id, ignore_malformed=False)
    mapper.parse(jsoncodec.loads(jsoncodec.dumps(doc)))
    assert not mapper.pending and not mapper.ignored


def test_documents_of_each_vendor():
    event = full_event("crusoe", "audit")
    doc = to_ecs(event, "prod")
    assert doc["@timestamp"] == "2025-01-15T12:00:00.123Z"
    assert doc["ecs"] == {"version": ECS_VERSION}
    assert doc["data_stream"] == {"type": "logs", "dataset": "forwarder_crusoe.audit", "namespace": "prod"}
    assert doc["event"]["dataset"] == dataset(event) == "forwarder_crusoe.audit"
    assert doc["event"]["original"] == jsoncodec.dumps_str(event.raw)
    assert doc["client"] == doc["source"] == {"ip": "192.0.2.7", "port": 5050}
    assert doc["related"] == {"user": ["u-1", "alice", "alice@example.com"], "ip": ["192.0.2.7"]}
    assert doc["organization"] == doc["cloud"]["account"] == {"id": "t-1", "name": "Tenant One"}
    assert doc["crusoe"]["audit"]["target"] == {"type": "User", "id": "u-2", "name": "bob"}
    # No client.* where the vendor does not call it the client; a non-IP stays out of ip fields.
    plain = to_ecs(full_event("hpe_greenlake", "audit", raw={"ipAddress": "x"}, source=Endpoint(ip="not-an-ip")))
    assert "client" not in plain and plain["source"] == {"address": "not-an-ip"} and "ip" not in plain["related"]
    # ip:port text is split; with a port out of range it is not an address at all and stays whole.
    split = to_ecs(full_event("hpe_greenlake", "audit", raw={}, source=Endpoint(ip="[2001:db8::1]:443")))
    assert split["source"] == {"ip": "2001:db8::1", "port": 443}
    odd = to_ecs(full_event("hpe_greenlake", "audit", raw={}, source=Endpoint(ip="10.1.2.3:99999")))
    assert odd["source"] == {"address": "10.1.2.3:99999"} and "ip" not in odd["related"]


def test_template_names_and_priority():
    templates = index_templates()
    assert templates["forwarder"]["priority"] > 100
    assert templates["forwarder"]["index_patterns"] == ["logs-forwarder_*-*"]
    assert "data_stream" not in templates["forwarder-daily"]
    assert all(spec["type"] for spec in FIELD_MAPPINGS.values())


def test_mapping_rejects_what_it_should():
    """Our mappings are not a rubber stamp: a concrete value where an object is mapped is refused."""
    mapper = _Mapper(mappings(), "x", ignore_malformed=False)
    with pytest.raises(EsError) as err:
        mapper.parse({"@timestamp": "2025-01-01T00:00:00Z", "user": "alice"})
    assert err.value.type == "document_parsing_exception"
    with pytest.raises(EsError):
        _Mapper(mappings(), "x", ignore_malformed=False).parse({"source": {"ip": "999.1.1.1"}})
