"""CI check of logstash/*.conf: real Logstash-config parsing (lscl) plus our own rules.

Logstash cannot run here, so every rule a Logstash would enforce at load time
(syntax, plugin names) or that our delivery depends on (data stream routing,
create + document id, ECS kept clean) is checked on the parsed config.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from lscl.errors import DecodeError
from lscl.lang import LsclAttribute, LsclBlock, LsclConditions, LsclNotMatch, LsclSelector
from lscl.parser import parse_lscl

from forwarder.ecs import DATASET_PREFIX, dataset, to_ecs
from forwarder.event import AuditEvent, Endpoint
from tests.servers.logstash import LogstashHttpInput

ROOT = Path(__file__).resolve().parent.parent / "logstash"
CONFS = sorted(ROOT.glob("*.conf"))
VENDORS = ("hpe_greenlake", "crusoe", "progress_mft", "carbon_black_cloud")

# Plugins of the default Logstash distribution (elastic/logstash rakelib/plugins-metadata.json,
# "default-plugins": true; integration plugins expanded to the inputs/outputs they carry).
BUNDLED = {
    "input": {
        "azure_event_hubs", "beats", "couchdb_changes", "dead_letter_queue", "elastic_agent",
        "elastic_serverless_forwarder", "elasticsearch", "exec", "file", "ganglia", "gelf", "generator",
        "graphite", "heartbeat", "http", "http_poller", "jdbc", "jms", "kafka", "logstash", "pipe",
        "rabbitmq", "redis", "s3", "snmp", "snmptrap", "sqs", "stdin", "syslog", "tcp", "twitter", "udp", "unix",
    },
    "filter": {
        "aggregate", "anonymize", "cidr", "clone", "csv", "date", "de_dot", "dissect", "dns", "drop",
        "elastic_integration", "elasticsearch", "fingerprint", "geoip", "grok", "http", "jdbc_static",
        "jdbc_streaming", "json", "kv", "memcached", "metrics", "mutate", "prune", "ruby", "sleep", "split",
        "syslog_pri", "throttle", "translate", "truncate", "urldecode", "useragent", "uuid", "xml",
    },
    "output": {
        "csv", "elastic_app_search", "elastic_workplace_search", "elasticsearch", "email", "file", "graphite",
        "http", "kafka", "logstash", "lumberjack", "nagios", "null", "pipe", "rabbitmq", "redis", "s3", "sns",
        "sqs", "stdout", "tcp", "udp", "webhdfs",
    },
    "codec": {
        "avro", "cef", "collectd", "dots", "edn", "edn_lines", "es_bulk", "fluent", "graphite", "json",
        "json_lines", "line", "msgpack", "multiline", "netflow", "plain", "rubydebug",
    },
}


def parse(path: Path) -> list[Any]:
    try:
        return parse_lscl(path.read_text(encoding="utf-8"))
    except DecodeError as exc:
        pytest.fail(f"{path.name}:{exc.line}:{exc.column}: {exc}")


def section(content: list[Any], name: str) -> list[Any]:
    return next(b.content for b in content if isinstance(b, LsclBlock) and b.name == name)


def plugins(content: list[Any]) -> Iterator[LsclBlock]:
    """Every plugin block, through if/else if/else."""
    for item in content:
        if isinstance(item, LsclBlock):
            yield item
        elif isinstance(item, LsclConditions):
            for _, branch in item.conditions:
                yield from plugins(branch)
            yield from plugins(item.default or [])


def settings(block: LsclBlock) -> dict[str, Any]:
    return {a.name: a.content for a in block.content if isinstance(a, LsclAttribute)}


def sample(vendor: str) -> AuditEvent:
    return AuditEvent.build(vendor=vendor, product="audit", raw={"v": vendor}, timestamp="2026-01-01T00:00:00Z",
                            source=Endpoint(ip="198.51.100.7"))


@pytest.fixture(scope="module", params=[p.name for p in CONFS])
def conf(request):
    return request.param, parse(ROOT / request.param)


def test_both_pipelines_exist():
    assert [p.name for p in CONFS] == ["forwarder-file.conf", "forwarder-http.conf"]


def test_top_level_is_only_input_filter_output(conf):
    name, content = conf
    assert all(isinstance(b, LsclBlock) for b in content), f"{name}: only blocks at top level"
    assert [b.name for b in content] == ["input", "filter", "output"], name


def test_plugin_names_come_from_the_bundled_set(conf):
    name, content = conf
    for kind in ("input", "filter", "output"):
        for block in plugins(section(content, kind)):
            assert block.name in BUNDLED[kind], f"{name}: {kind} plugin {block.name!r} is not bundled with Logstash"
            options = settings(block)
            codecs = [options["codec"]] if "codec" in options else []
            codecs += list(options.get("additional_codecs", {}).values())
            for codec in codecs:
                assert codec in BUNDLED["codec"], f"{name}: codec {codec!r} is not bundled with Logstash"


# Options logstash-output-elasticsearch accepts next to `data_stream => "true"` (its
# DataStreamSupport#invalid_data_stream_params): the connection/auth/TLS/retry options of its
# APIConfigs::CONFIG_PARAMS, the generic plugin options, data_stream_*, and a few fixed values.
# manage_template is left out: only 11.12.4+ (Logstash 8.7+) accepts it.
DATA_STREAM_SHARED_OPTIONS = {
    "user", "password", "api_key", "cloud_auth", "document_id", "path", "bulk_path", "parameters", "ssl_enabled",
    "ssl_verification_mode", "ssl_certificate_authorities", "ca_trusted_fingerprint", "ssl_truststore_path",
    "ssl_truststore_type", "ssl_truststore_password", "ssl_keystore_path", "ssl_keystore_type", "ssl_keystore_password",
    "ssl_supported_protocols", "ssl_certificate", "ssl_key", "ssl_cipher_suites", "sniffing", "sniffing_delay",
    "sniffing_path", "proxy", "timeout", "silence_errors_in_log", "pool_max", "pool_max_per_route",
    "healthcheck_path", "resurrect_delay", "validate_after_inactivity", "compression_level", "custom_headers",
    "hosts", "cloud_id", "retry_initial_interval", "retry_max_interval", "dlq_custom_codes",
    "dlq_on_failed_indexname_interpolation", "id", "enable_metric", "codec", "workers", "routing", "pipeline",
    "ecs_compatibility",
}


def data_stream_compatible(option: str, value: Any) -> bool:
    if option == "action":
        return value == "create"
    if option == "data_stream":
        return value == "true"
    return option.startswith("data_stream_") or option in DATA_STREAM_SHARED_OPTIONS


def test_the_data_stream_rule_refuses_what_logstash_refuses():
    for option, value in (("index", "logs-x"), ("action", "index"), ("manage_template", "false"), ("template", "/t.json"),
                          ("ilm_enabled", "false"), ("data_stream", "auto")):
        assert not data_stream_compatible(option, value), option


def test_elasticsearch_output_writes_our_data_streams_with_create_and_the_event_id(conf):
    name, content = conf
    outputs = [b for b in plugins(section(content, "output")) if b.name == "elasticsearch"]
    assert len(outputs) == 1, name
    es = settings(outputs[0])
    assert "index" not in es, f"{name}: index turns data stream mode off"
    assert es["data_stream"] == "true" and es["data_stream_type"] == "logs"
    assert es["data_stream_auto_routing"] == "true" and es["data_stream_sync_fields"] == "true"
    assert es["action"] == "create" and es["document_id"] == "%{[event][id]}"
    assert es.get("ecs_compatibility", "v8") != "disabled", f"{name}: data streams need ECS mode"
    refused = {k: v for k, v in es.items() if not data_stream_compatible(k, v)}
    assert not refused, f"{name}: with data_stream => true Logstash refuses to start on {sorted(refused)}"
    fallback = es["data_stream_dataset"]
    assert fallback.startswith(DATASET_PREFIX) and fallback.endswith(".audit")
    assert re.fullmatch(r"[a-z0-9_]+", es["data_stream_namespace"])
    assert not es["hosts"][0].startswith("http") and "${" in es["api_key"], "credentials come from ${VAR}"


def guard_pattern(content: list[Any]) -> re.Pattern[str]:
    """The dataset regex of the filter's "is this one of our documents" condition."""
    for item in section(content, "filter"):
        if isinstance(item, LsclConditions):
            for cond, _ in item.conditions:
                for part in getattr(cond, "conditions", [cond]):
                    if isinstance(part, LsclNotMatch) and part.value == LsclSelector(names=["data_stream", "dataset"]):
                        return part.pattern
    pytest.fail("no [data_stream][dataset] !~ /.../ guard in the filter")


def test_only_our_datasets_reach_elasticsearch(conf):
    name, content = conf
    pattern = guard_pattern(content)
    for vendor in VENDORS:
        assert pattern.search(dataset(sample(vendor))), f"{name}: {vendor} would be rejected"
    for foreign in ("carbon_black_cloud.audit", "generic", "forwarder_crusoe.audit-x", "FORWARDER_X.audit"):
        assert not pattern.search(foreign), f"{name}: {foreign} would reach our data streams"
    assert pattern.search(settings(next(b for b in plugins(section(content, "output")) if b.name == "elasticsearch"))["data_stream_dataset"])


def test_rejected_events_go_to_a_file_not_to_elasticsearch(conf):
    _, content = conf
    (cond, branch), = section(content, "output")[0].conditions
    assert [b.name for b in branch] == ["file"]
    assert [b.name for b in section(content, "output")[0].default] == ["elasticsearch"]
    assert cond.needle == "forwarder_rejected"


def test_the_two_pipelines_share_filter_and_output():
    http, file = parse(ROOT / "forwarder-http.conf"), parse(ROOT / "forwarder-file.conf")
    assert section(file, "output") == section(http, "output")
    extra, *rest = section(file, "filter")
    assert rest == section(http, "filter")
    assert extra.name == "mutate" and settings(extra)["remove_field"] == ["[path]", "[host]"]


def test_fields_the_file_input_adds_are_never_ours():
    doc = to_ecs(sample("crusoe"))
    assert "path" not in doc and "host" not in doc and "@version" not in doc


def test_every_variable_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in CONFS:
        for var in re.findall(r"\$\{([A-Z0-9_]+)(?::[^}]*)?\}", path.read_text(encoding="utf-8")):
            assert f"`{var}`" in readme, f"{path.name}: ${{{var}}} is not documented in logstash/README.md"


def test_pipelines_yml_points_at_our_files_with_a_persisted_queue():
    text = (ROOT / "pipelines.yml").read_text(encoding="utf-8")
    entries = re.split(r"^- ", text, flags=re.M)[1:]
    assert {re.search(r'path.config: ".*/([^/"]+)"', e).group(1) for e in entries} == {p.name for p in CONFS}
    assert all("queue.type: persisted" in e for e in entries)


def test_pipelines_yml_keeps_what_elasticsearch_refuses_in_a_bounded_dead_letter_queue():
    text = (ROOT / "pipelines.yml").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for entry in re.split(r"^- ", text, flags=re.M)[1:]:
        values = dict(re.findall(r"^\s*([\w.]+):\s*\"?([^\"\n]+)\"?$", entry, re.M))
        assert values["dead_letter_queue.enable"] == "true", values["pipeline.id"]
        assert values["path.dead_letter_queue"].startswith("/") and values["path.dead_letter_queue"] in readme
        assert re.fullmatch(r"\d+(mb|gb)", values["dead_letter_queue.max_bytes"]) and values["dead_letter_queue.max_bytes"] in readme
        assert values["dead_letter_queue.storage_policy"] in ("drop_newer", "drop_older")


def test_elasticsearch_output_trusts_a_configurable_ca(conf):
    name, content = conf
    es = settings(next(b for b in plugins(section(content, "output")) if b.name == "elasticsearch"))
    (cas,) = es["ssl_certificate_authorities"]
    assert re.fullmatch(r"\$\{FORWARDER_ES_CA:/[^}]+\}", cas), name
    assert es.get("ssl_verification_mode", "full") == "full"


def http_input() -> dict[str, Any]:
    return settings(next(b for b in section(parse(ROOT / "forwarder-http.conf"), "input") if b.name == "http"))


def test_http_input_takes_ndjson_over_tls_with_basic_auth():
    http = http_input()
    codec = http.get("additional_codecs", {}).get("application/x-ndjson", http.get("codec", "plain"))
    assert codec == "json_lines"
    assert http["ssl_enabled"] == "true" and "${" in http["password"] and http["response_code"] == 200


def test_documents_pass_the_http_input_unchanged(monkeypatch):
    """The stub set up exactly like our http input, fed by the sink: the filter's only edit restores the ECS document."""
    from tests.test_logstash_sink import events, make_sink

    http = http_input()
    stub = LogstashHttpInput(
        user="forwarder", password="s3cret-logstash-pw", codec=http["codec"],
        additional_codecs=http["additional_codecs"], ecs_compatibility=http["ecs_compatibility"],
        remote_host_target_field=http["remote_host_target_field"],
        request_headers_target_field=http["request_headers_target_field"], response_code=http["response_code"],
    )
    removed = settings(section(parse(ROOT / "forwarder-http.conf"), "filter")[0].default[0])["remove_field"]
    evs = events(5)
    with stub:
        sink = make_sink(monkeypatch, stub.url)
        assert sink.send(evs) == []
        docs = stub.documents()
    for doc in docs:
        for field in removed:
            doc.pop(field, None)
    assert docs == [to_ecs(e) for e in evs]



def test_output_and_enrichment_fit_our_index_template(conf):
    from forwarder.es_templates import DATA_STREAM_PATTERN, FIELD_TYPES

    name, content = conf
    es = settings(next(b for b in plugins(section(content, "output")) if b.name == "elasticsearch"))
    for ds in [es["data_stream_dataset"], *(dataset(sample(v)) for v in VENDORS)]:
        stream = f"{es['data_stream_type']}-{ds}-{es['data_stream_namespace']}"
        assert fnmatch.fnmatchcase(stream, DATA_STREAM_PATTERN), f"{name}: {stream} would miss our index template"
    geoip = [settings(b) for b in plugins(section(content, "filter")) if b.name == "geoip"]
    assert {g["target"] for g in geoip} == {"[source]"} and {g.get("default_database_type", "City") for g in geoip} == {"City", "ASN"}
    for field, es_type in (("source.geo.location", "geo_point"), ("source.geo.country_iso_code", "keyword"),
                           ("source.geo.city_name", "keyword"), ("source.as.number", "long"),
                           ("source.as.organization.name", "keyword")):
        assert FIELD_TYPES.get(field) == es_type, f"{field} is not mapped as {es_type}"
