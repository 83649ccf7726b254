"""What ``siem-forwarder setup elasticsearch`` installs, and the field types of every field we write.

Objects (all carry ``_meta.managed_by = siem-forwarder`` and a hash of their own body,
so ``install`` rewrites only what differs and a second run changes nothing):

- ILM policy ``forwarder`` (data streams): hot rollover by age / primary shard size,
  then delete after the retention; ``forwarder-daily`` (daily indices): delete only.
- Component template ``forwarder@mappings``: explicit mappings for every field in
  ``FIELD_MAPPINGS`` (vendor namespaces are ``dynamic: false``; vendor extras are
  one ``flattened`` field, so no vendor's open-ended details can cause a mapping
  conflict). ``forwarder@custom`` is yours: it is composed last and never written.
- Index template ``forwarder`` for ``logs-forwarder_*-*`` data streams, priority 200
  (the built-in ``logs`` template, ``logs-*-*``, has 100), composed of Elastic's
  ``logs@mappings``, ``logs@settings``, ``ecs@mappings`` (all optional, so a cluster
  with stack templates disabled works too), ours and ``forwarder@custom``.
- Index template ``forwarder-daily`` for ``forwarder-*`` indices (the sink's
  ``index_mode = "daily"``), with the read alias ``forwarder-audit``.

With the sink's ``lifecycle = "dsl"`` (Elasticsearch Serverless has no ILM) the
data streams are managed by the data stream lifecycle instead: no ILM policy
and no daily template are installed, and the ``forwarder`` index template
carries ``lifecycle.data_retention`` (the retention; none keeps data forever)
with ``index.lifecycle.prefer_ilm: false``, so the ILM policy that Elastic's
``logs@settings`` brings on a stateful cluster does not take over. Elasticsearch
rolls the backing indices over itself (cluster setting
``data_streams.lifecycle.default.rollover``): the ``rollover_*`` options do not apply.

The Kibana objects and the Logstash pipelines read field names and types from
``FIELD_TYPES`` (dotted name → Elasticsearch type).
"""

from __future__ import annotations

from typing import Any

from forwarder.ecs import DATASET_PREFIX, ECS_VERSION, VENDOR_SHAPES
from forwarder.event import content_hash

MANAGED_BY = "siem-forwarder"
TEMPLATE_VERSION = 1
PRIORITY = 200  # beats the built-in "logs" template (100); equal priorities with overlapping patterns are refused
DATA_STREAM_TEMPLATE = "forwarder"
DAILY_TEMPLATE = "forwarder-daily"
MAPPINGS_COMPONENT = "forwarder@mappings"
CUSTOM_COMPONENT = "forwarder@custom"
ILM_POLICY = "forwarder"
DAILY_ILM_POLICY = "forwarder-daily"
DATA_STREAM_PATTERN = f"logs-{DATASET_PREFIX}*-*"
DAILY_PREFIX = "forwarder-"
DAILY_PATTERN = f"{DAILY_PREFIX}*"
DAILY_ALIAS = "forwarder-audit"
ALL_PATTERNS = f"{DATA_STREAM_PATTERN},{DAILY_PATTERN}"  # a data view over both index modes
LIFECYCLES = ("ilm", "dsl")  # who manages retention: index lifecycle management, or the data stream lifecycle

# (vendor, product) of every source: each gets its own namespace "<vendor>.<product>.*".
VENDORS: tuple[tuple[str, str], ...] = (
    ("carbon_black_cloud", "audit"),
    ("crusoe", "audit"),
    ("hpe_greenlake", "audit"),
    ("progress_mft", "audit"),
)

_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_KEYWORD_TEXT = {"type": "keyword", "ignore_above": 1024, "fields": {"text": {"type": "match_only_text"}}}
_IP = {"type": "ip"}
_DATE = {"type": "date"}
_LONG = {"type": "long"}
_BOOLEAN = {"type": "boolean"}

# Every field forwarder.ecs.to_ecs can write (types as in ECS's generated component templates).
ECS_FIELDS: dict[str, dict[str, Any]] = {
    "@timestamp": _DATE,
    "data_stream.type": {"type": "constant_keyword"},
    "data_stream.dataset": {"type": "constant_keyword"},
    "data_stream.namespace": {"type": "constant_keyword"},
    "ecs.version": _KEYWORD,
    "event.kind": _KEYWORD,
    "event.category": _KEYWORD,
    "event.type": _KEYWORD,
    "event.action": _KEYWORD,
    "event.outcome": _KEYWORD,
    "event.id": _KEYWORD,
    "event.provider": _KEYWORD,
    "event.module": _KEYWORD,
    "event.dataset": _KEYWORD,
    "event.created": _DATE,
    "event.original": {"type": "keyword", "index": False, "doc_values": False},
    "event.reason": _KEYWORD,
    "message": {"type": "match_only_text"},
    "user.id": _KEYWORD,
    "user.name": _KEYWORD_TEXT,
    "user.email": _KEYWORD,
    "source.ip": _IP,
    "source.port": _LONG,
    "source.address": _KEYWORD,
    "client.ip": _IP,
    "client.port": _LONG,
    "client.address": _KEYWORD,
    "client.user.id": _KEYWORD,
    "related.ip": _IP,
    "related.user": _KEYWORD,
    "organization.id": _KEYWORD,
    "organization.name": _KEYWORD_TEXT,
    "cloud.provider": _KEYWORD,
    "cloud.region": _KEYWORD,
    "cloud.account.id": _KEYWORD,
    "cloud.account.name": _KEYWORD,
    "url.original": {"type": "wildcard", "fields": {"text": {"type": "match_only_text"}}},
}
# Fields we do not write but that our Logstash pipelines (geoip, tags) and Elastic's ingest add.
ENRICHMENT_FIELDS: dict[str, dict[str, Any]] = {
    "event.ingested": _DATE,
    "tags": _KEYWORD,
    "source.geo.location": {"type": "geo_point"},
    "source.geo.continent_name": _KEYWORD,
    "source.geo.country_iso_code": _KEYWORD,
    "source.geo.country_name": _KEYWORD,
    "source.geo.region_name": _KEYWORD,
    "source.geo.city_name": _KEYWORD,
    "source.as.number": _LONG,
    "source.as.organization.name": _KEYWORD_TEXT,
}


def vendor_fields(vendor: str, product: str) -> dict[str, dict[str, Any]]:
    """The fields of one vendor namespace (``<vendor>.<product>.*``)."""
    ns = f"{vendor}.{product}"
    shape = VENDOR_SHAPES.get(vendor)
    return {
        **{f"{ns}.{name}": _BOOLEAN for name in (shape.booleans if shape else ())},
        f"{ns}.actor.type": _KEYWORD,
        f"{ns}.target.type": _KEYWORD,
        f"{ns}.target.id": _KEYWORD,
        f"{ns}.target.name": _KEYWORD,
        # Vendor extras have open-ended shapes: one flattened field indexes every leaf as a keyword.
        f"{ns}.details": {"type": "flattened", "ignore_above": 1024},
    }


FIELD_MAPPINGS: dict[str, dict[str, Any]] = {
    **ECS_FIELDS,
    **ENRICHMENT_FIELDS,
    **{name: spec for v, p in VENDORS for name, spec in vendor_fields(v, p).items()},
}
FIELD_TYPES: dict[str, str] = {name: spec["type"] for name, spec in FIELD_MAPPINGS.items()}


def mappings() -> dict[str, Any]:
    """``FIELD_MAPPINGS`` as a nested Elasticsearch mapping."""
    root: dict[str, Any] = {"properties": {}}
    for name, spec in FIELD_MAPPINGS.items():
        node = root
        parts = name.split(".")
        for part in parts[:-1]:
            node = node["properties"].setdefault(part, {"properties": {}})
        node["properties"][parts[-1]] = dict(spec)
    for vendor, product in VENDORS:
        root["properties"][vendor]["properties"][product]["dynamic"] = False
    root["date_detection"] = False
    root["_meta"] = {"managed_by": MANAGED_BY, "ecs_version": ECS_VERSION}
    return root


def _duration(seconds: float) -> str:
    """An ILM time value: whole days when it is whole days, else seconds."""
    return f"{int(seconds // 86400)}d" if seconds % 86400 == 0 else f"{int(seconds)}s"


def ilm_policies(retention: float, rollover_max_age: float, rollover_max_primary_shard_size: str) -> dict[str, dict[str, Any]]:
    """ILM policy bodies by name; ``retention`` 0 keeps data forever."""
    rollover = {"max_age": _duration(rollover_max_age), "max_primary_shard_size": rollover_max_primary_shard_size}
    stream: dict[str, Any] = {"hot": {"min_age": "0ms", "actions": {"rollover": rollover}}}
    daily: dict[str, Any] = {"hot": {"min_age": "0ms", "actions": {}}}
    if retention:
        for phases in (stream, daily):
            phases["delete"] = {"min_age": _duration(retention), "actions": {"delete": {}}}
    return {
        ILM_POLICY: {"policy": {"phases": stream, "_meta": _meta("rollover, then delete (data streams)")}},
        DAILY_ILM_POLICY: {"policy": {"phases": daily, "_meta": _meta("delete after the retention (daily indices)")}},
    }


def component_templates() -> dict[str, dict[str, Any]]:
    """Component template bodies by name."""
    return {
        MAPPINGS_COMPONENT: {
            "template": {"mappings": mappings()},
            "version": TEMPLATE_VERSION,
            "_meta": _meta("explicit mappings for every field siem-forwarder writes"),
        }
    }


def data_stream_lifecycle(retention: float) -> dict[str, Any]:
    """The template's ``lifecycle`` block (``lifecycle = "dsl"``); ``retention`` 0 keeps data forever."""
    return {"enabled": True, **({"data_retention": _duration(retention)} if retention else {})}


def index_templates(lifecycle: str = "ilm", retention: float = 0) -> dict[str, dict[str, Any]]:
    """Index template bodies by name: both index modes under ILM, data streams only under ``dsl``."""
    elastic = ["logs@mappings", "logs@settings", "ecs@mappings"]
    dsl = lifecycle == "dsl"
    stream = {
        "index_patterns": [DATA_STREAM_PATTERN],
        "priority": PRIORITY,
        "data_stream": {},
        "composed_of": [*elastic, MAPPINGS_COMPONENT, CUSTOM_COMPONENT],
        "ignore_missing_component_templates": [*elastic, CUSTOM_COMPONENT],
        "template": ({"settings": {"index": {"lifecycle": {"prefer_ilm": False}}}, "lifecycle": data_stream_lifecycle(retention)}
                     if dsl else {"settings": {"index": {"lifecycle": {"name": ILM_POLICY}}}}),
        "version": TEMPLATE_VERSION,
        "_meta": _meta("siem-forwarder audit-log data streams" + (" (data stream lifecycle)" if dsl else "")),
    }
    if dsl:
        return {DATA_STREAM_TEMPLATE: stream}
    return {
        DATA_STREAM_TEMPLATE: stream,
        DAILY_TEMPLATE: {
            "index_patterns": [DAILY_PATTERN],
            "priority": PRIORITY,
            "composed_of": ["ecs@mappings", MAPPINGS_COMPONENT, CUSTOM_COMPONENT],
            "ignore_missing_component_templates": ["ecs@mappings", CUSTOM_COMPONENT],
            "template": {
                "settings": {"index": {"lifecycle": {"name": DAILY_ILM_POLICY}, "mapping": {"ignore_malformed": True}}},
                "aliases": {DAILY_ALIAS: {}},
            },
            "version": TEMPLATE_VERSION,
            "_meta": _meta("siem-forwarder daily indices (index_mode = daily)"),
        },
    }


def _meta(description: str) -> dict[str, Any]:
    return {"managed_by": MANAGED_BY, "description": description}


def with_hash(body: dict[str, Any], meta_path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``body`` with ``_meta.hash`` (at ``meta_path``) set to the hash of the body itself."""
    digest = content_hash(body)[:16]
    node = body
    for key in meta_path:
        node = node[key]
    node["_meta"] = {**node["_meta"], "hash": digest}
    return body


def install(client: Any, *, namespace: str, retention: float, rollover_max_age: float,
            rollover_max_primary_shard_size: str, lifecycle: str = "ilm") -> list[str]:
    """Install or update every object through an ``elasticsearch.Elasticsearch`` client; one line per object.

    Idempotent: an object whose stored ``_meta.hash`` matches is left alone. Afterwards the
    template that would apply to a new data stream is simulated, and a higher-priority
    template shadowing ours, or a lifecycle other than the one asked for, is reported as an
    error (``RuntimeError``, the caller words it).
    """
    lines: list[str] = []
    policies = ilm_policies(retention, rollover_max_age, rollover_max_primary_shard_size) if lifecycle == "ilm" else {}
    for name, body in policies.items():
        body = with_hash(body, ("policy",))
        current = _stored(lambda: client.ilm.get_lifecycle(name=name), lambda r: r[name]["policy"])
        lines.append(_apply("ILM policy", name, body["policy"]["_meta"]["hash"], current,
                            lambda: client.ilm.put_lifecycle(name=name, policy=body["policy"])))
    for name, body in component_templates().items():
        body = with_hash(body)
        current = _stored(lambda: client.cluster.get_component_template(name=name),
                          lambda r: r["component_templates"][0]["component_template"])
        lines.append(_apply("component template", name, body["_meta"]["hash"], current,
                            lambda: client.cluster.put_component_template(name=name, **_kwargs(body))))
    for name, body in index_templates(lifecycle, retention).items():
        body = with_hash(body)
        current = _stored(lambda: client.indices.get_index_template(name=name),
                          lambda r: r["index_templates"][0]["index_template"])
        lines.append(_apply("index template", name, body["_meta"]["hash"], current,
                            lambda: client.indices.put_index_template(name=name, **_kwargs(body))))
    probe = f"logs-{DATASET_PREFIX}{VENDORS[0][0]}.{VENDORS[0][1]}-{namespace}"
    simulated = client.indices.simulate_index_template(name=probe).body
    shadowing = [t.get("name") for t in simulated.get("overlapping", []) if t.get("name") == DATA_STREAM_TEMPLATE]
    resolved = simulated.get("template", {})
    ilm = resolved.get("settings", {}).get("index", {}).get("lifecycle", {})
    if lifecycle == "dsl":
        want = data_stream_lifecycle(retention).get("data_retention")
        dsl = resolved.get("lifecycle")
        ours = isinstance(dsl, dict) and dsl.get("data_retention") == want and str(ilm.get("prefer_ilm")).lower() == "false"
        found = f"resolved lifecycle: {dsl}, prefer_ilm: {ilm.get('prefer_ilm')}"
    else:
        ours, found = ilm.get("name") == ILM_POLICY, f"resolved ILM policy: {ilm.get('name')}"
    if shadowing or not ours:
        raise RuntimeError(
            f"a new data stream {probe} would not use index template {DATA_STREAM_TEMPLATE!r} "
            f"(a template with priority above {PRIORITY} matches it; {found})"
        )
    managed = "the data stream lifecycle" if lifecycle == "dsl" else f"ILM policy {ILM_POLICY!r}"
    lines.append(f"verified: new data streams like {probe} use index template {DATA_STREAM_TEMPLATE!r}, managed by {managed}")
    return lines


def _kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """A template body as client keyword arguments (the client calls ``_meta`` ``meta``)."""
    return {("meta" if key == "_meta" else key): value for key, value in body.items()}


def _stored(get: Any, pick: Any) -> dict[str, Any] | None:
    """The stored object, or None when there is none (404)."""
    from elasticsearch import NotFoundError

    try:
        return pick(get().body)
    except NotFoundError:
        return None


def _apply(kind: str, name: str, digest: str, current: dict[str, Any] | None, put: Any) -> str:
    if current is not None and (current.get("_meta") or {}).get("hash") == digest:
        return f"{kind} {name}: unchanged"
    put()
    return f"{kind} {name}: {'created' if current is None else 'updated'}"
