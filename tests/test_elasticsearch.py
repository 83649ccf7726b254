"""Elasticsearch sink and ``setup elasticsearch`` against the strict test server (tests/servers/elasticsearch.py).

Tests taking the ``target`` fixture run against the test server as Elasticsearch 8.x and
9.x, or, when ``FORWARDER_TEST_ES_URL`` is set, against that real cluster instead (also
``FORWARDER_TEST_ES_API_KEY`` or ``FORWARDER_TEST_ES_USER``/``FORWARDER_TEST_ES_PASSWORD``,
``FORWARDER_TEST_ES_CA``). Use a throw-away cluster: setup installs our templates and each
test writes into its own namespace, deleted afterwards. Tests taking ``server`` need the
test server's fault knobs and always run locally.
"""

from __future__ import annotations

import base64
import inspect
import os
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import elasticsearch
import pytest
import requests

from forwarder import cli, jsoncodec, registry
from forwarder.config import parse_config
from forwarder.es_templates import mappings
from forwarder.deadletter import DeadLetters
from forwarder.errors import AuthError, ConfigError, SetupError, SinkError
from forwarder.event import AuditEvent, Endpoint
from forwarder.pipeline import Pipeline
from forwarder.runner import run_once
from forwarder.sinks.elasticsearch import ElasticsearchSink, setup
from forwarder.sources.base import Page, Source
from forwarder.config import SourceConfig
from forwarder.http import HttpSettings
from forwarder.state import SqliteStore
from forwarder.timeutil import now
from tests.servers.elasticsearch import ElasticsearchServer, _Mapper
from tests.servers.tls import self_signed, server_context

REAL_URL = os.environ.get("FORWARDER_TEST_ES_URL")
FAST_HTTP = {"retries": 3, "backoff_base": 0.001, "backoff_max": 0.005, "timeout": 10}


def events(n: int, start: int = 0, vendor: str = "crusoe", **fields: Any) -> list[AuditEvent]:
    return [AuditEvent.build(vendor=vendor, product="audit", raw={"i": i}, timestamp=1736942400 + i * 3600,
                             action="Create", category="iam", source=Endpoint(ip="192.0.2.1"), **fields)
            for i in range(start, start + n)]


@dataclass
class Target:
    """Where the sink writes: the local test server or a real cluster."""

    url: str
    auth: dict[str, Any]
    server: ElasticsearchServer | None
    namespace: str

    def table(self, **extra: Any) -> dict[str, Any]:
        http = {**FAST_HTTP, **extra.pop("http", {})}
        if REAL_URL and os.environ.get("FORWARDER_TEST_ES_CA"):
            http["ca_bundle"] = os.environ["FORWARDER_TEST_ES_CA"]
        return {"name": "es", "type": "elasticsearch", "hosts": [self.url], "namespace": self.namespace,
                **self.auth, "http": http, **extra}

    def config(self, **extra: Any):
        return parse_config({"sink": [self.table(**extra)]})

    def sink(self, **extra: Any) -> ElasticsearchSink:
        sink = ElasticsearchSink(self.config(**extra).sinks[0])
        sink.sleep = lambda seconds: None
        return sink

    def client(self) -> elasticsearch.Elasticsearch:
        sink = self.sink()
        return sink.client

    def stored(self, pattern: str) -> int:
        client = self.client()
        client.indices.refresh(index=pattern, allow_no_indices=True, ignore_unavailable=True)
        return client.count(index=pattern)["count"]


def _local(version: str, **kwargs: Any) -> ElasticsearchServer:
    return ElasticsearchServer(version=version, **kwargs).start()


@pytest.fixture(params=["real"] if REAL_URL else ["8.17.0", "9.1.0"])
def target(request, monkeypatch):
    namespace = f"t{uuid.uuid4().hex[:12]}"
    if request.param != "real":
        server = _local(request.param)
        yield Target(server.url, {}, server, namespace)
        server.stop()
        return
    auth: dict[str, Any] = {}
    if os.environ.get("FORWARDER_TEST_ES_API_KEY"):
        auth = {"api_key": "env:FORWARDER_TEST_ES_API_KEY"}
    elif os.environ.get("FORWARDER_TEST_ES_USER"):
        auth = {"username": os.environ["FORWARDER_TEST_ES_USER"], "password": "env:FORWARDER_TEST_ES_PASSWORD"}
    tgt = Target(REAL_URL, auth, None, namespace)
    yield tgt
    client = tgt.client()
    client.options(ignore_status=404).indices.delete_data_stream(name=f"logs-forwarder_*-{namespace}")
    for row in client.cat.indices(index=f"forwarder-*-{namespace}-*", h="index", format="json"):
        client.indices.delete(index=row["index"])


@pytest.fixture
def server():
    es = _local("8.17.0")
    yield es
    es.stop()


def local_sink(es: ElasticsearchServer, **extra: Any) -> ElasticsearchSink:
    return Target(es.url, {}, es, "default").sink(**extra)


STREAM = "logs-forwarder_crusoe.audit-default"


# -- delivery -------------------------------------------------------------------------

def test_replaying_the_same_events_twice_stores_each_once(target):
    setup(target.config())
    sink = target.sink()
    batch = events(20)
    assert sink.send(batch) == []
    assert sink.send(batch) == []  # every item answers 409: delivered already
    assert target.stored(f"logs-forwarder_crusoe.audit-{target.namespace}") == 20
    if target.server is not None:
        assert all(target.server.item_attempts[e.id] == 2 for e in batch)
        stored = target.server.documents(f"logs-forwarder_crusoe.audit-{target.namespace}")
        assert {d["event"]["id"] for d in stored} == {e.id for e in batch}


def test_mixed_item_failures_retry_only_the_retryable_ones(server):
    sink = local_sink(server)
    # Without our template the stream maps vendor details dynamically: an object, then a string → conflict.
    first = events(1, vendor="crusoe", details={"limits": {"cpu": 4}})
    assert sink.send(first) == []
    batch = events(5, start=1)
    conflicting = events(1, start=9, details={"limits": "none"})[0]
    server.fail_items(batch[0].id, 429, 429)
    server.fail_items(batch[1].id, 503)
    rejected = sink.send(batch + [conflicting])
    assert [r.event.id for r in rejected] == [conflicting.id]
    assert "document_parsing_exception" in rejected[0].reason and "limits" in rejected[0].reason
    assert server.item_attempts[batch[0].id] == 3
    assert server.item_attempts[batch[1].id] == 2
    assert all(server.item_attempts[e.id] == 1 for e in batch[2:])
    assert server.item_attempts[conflicting.id] == 1  # a bad document is not retried
    assert server.count(STREAM) == 6


def test_whole_request_429_and_5xx_are_retried_and_retry_after_is_honoured(server):
    sink = local_sink(server)
    waits: list[float] = []
    sink.sleep = waits.append
    server.fail_requests(429, retry_after=2)
    server.fail_requests(503, 502)
    assert sink.send(events(3)) == []
    assert server.bulk_requests == 4 and server.count(STREAM) == 3
    assert waits[0] >= 2 and all(w < 1 for w in waits[1:])


def test_retries_run_out_into_a_sink_error(server):
    sink = local_sink(server)
    batch = events(3)
    server.fail_items(batch[1].id, *[429] * 4)
    with pytest.raises(SinkError) as err:
        sink.send(batch)
    assert "1 of 3 documents not accepted after 4 attempts" in str(err.value)
    assert "es_rejected_execution_exception" in str(err.value)


def test_mapping_errors_reach_the_dead_letter_file_and_the_checkpoint_moves(server, tmp_path):
    class Records(Source):
        TYPE = VENDOR = "crusoe"

        def fetch(self, cursor, start, end):
            yield Page([{"i": 0, "d": {"x": {"y": 1}}}, {"i": 1, "d": {"x": "flat"}}, {"i": 2, "d": {}}], {"page": 1})

        def normalize(self, record):
            return AuditEvent.build(vendor="crusoe", product="audit", raw=record, timestamp=1736942400, details=record["d"])

    store = SqliteStore(tmp_path / "state")
    source = Records(SourceConfig("src", "crusoe", 60, 0, 60, True, HttpSettings()), store, tmp_path)
    pipeline = Pipeline([local_sink(server)], store, DeadLetters(tmp_path / "dl"))
    try:
        result = pipeline.run_pass(source, now(), now())
    finally:
        pipeline.close()
    assert result.error is None and store.get("src") == {"page": 1}
    lines = [jsoncodec.loads(line) for line in (tmp_path / "dl" / "deadletter.ndjson").read_bytes().splitlines()]
    assert [(line["origin"], line["record"]["raw"]["i"]) for line in lines] == [("sink:es", 1)]
    assert "document_parsing_exception" in lines[0]["reason"] and "tried to parse field [x] as object" in lines[0]["reason"]
    assert server.count(STREAM) == 2


def test_after_setup_vendor_details_of_any_shape_are_accepted(server):
    setup(Target(server.url, {}, server, "default").config())
    sink = local_sink(server)
    assert sink.send(events(1, details={"limits": {"cpu": 4}}) + events(1, start=1, details={"limits": "none"})) == []
    assert server.count(STREAM) == 2


def test_failure_store_diversions_are_dead_lettered(server):
    server.failure_store = True
    sink = local_sink(server)
    assert sink.send(events(1, details={"x": {"y": 1}})) == []
    rejected = sink.send(events(1, start=1, details={"x": "flat"}))
    assert len(rejected) == 1 and "failure store" in rejected[0].reason
    assert len(server.failed) == 1


def test_batches_by_count_and_by_bytes(server):
    assert local_sink(server, batch_events=4).send(events(10)) == []
    assert server.bulk_requests == 3
    one = len(local_sink(server).encode(events(1))[0])
    assert local_sink(server, batch_bytes=max(1024, one * 2 + 10)).send(events(10, start=10)) == []
    assert server.bulk_requests == 3 + 5
    assert server.count(STREAM) == 20


def test_413_splits_the_request_and_rejects_a_single_oversized_document(server):
    server.max_content_length = 4000
    sink = local_sink(server)
    assert sink.send(events(12)) == []
    assert server.count(STREAM) == 12
    huge = events(1, start=50, message="x" * 5000)
    rejected = sink.send(huge + events(1, start=51))
    assert [r.event.id for r in rejected] == [huge[0].id] and "413" in rejected[0].reason
    assert server.count(STREAM) == 13


def test_missing_index_stops_the_batch_with_advice(server):
    server.auto_create = False
    with pytest.raises(SinkError, match="setup elasticsearch"):
        local_sink(server).send(events(2))


def test_gzip_bodies(server):
    assert local_sink(server, compress=True).send(events(5)) == []
    assert server.bulk_headers[-1]["content-encoding"] == "gzip" and server.count(STREAM) == 5


# -- index modes and the rollover caveat --------------------------------------------

def test_every_vendors_documents_fit_the_installed_mappings_exactly(server, tmp_path, monkeypatch):
    """Each simulator's records, normalized by its source and stored after setup: every field of
    every document is one the template maps explicitly, with a value of that type (Elasticsearch
    itself would map an unknown field dynamically and drop a malformed value silently)."""
    setup(Target(server.url, {}, server, "default").config())
    with ExitStack() as stack:
        sources = []
        for vendor in sorted(registry.SIMULATORS):
            table, env = stack.enter_context(registry.load("simulator", vendor)()).demo_source(40)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            sources.append(table)
        sink = Target(server.url, {}, server, "default").table()
        results = run_once(parse_config({"state": {"dir": str(tmp_path)}, "source": sources, "sink": [sink]}))
    assert [(r.error, r.dead_letters) for r in results] == [(None, 0)] * len(sources)
    for result in results:
        docs = server.documents(f"logs-forwarder_{result.vendor}.audit-default")
        assert result.events > 0 and len(docs) == result.events
        for doc in docs:
            mapper = _Mapper(mappings(), doc["event"]["id"], ignore_malformed=False)
            mapper.parse(doc)
            assert not mapper.pending and not mapper.ignored, (result.vendor, list(mapper.pending), mapper.ignored)


def test_data_stream_replay_across_a_rollover_duplicates_but_daily_indices_do_not(target):
    setup(target.config())
    stream = f"logs-forwarder_crusoe.audit-{target.namespace}"
    batch = events(5)
    sink = target.sink()
    assert sink.send(batch) == []
    target.client().indices.rollover(alias=stream)
    assert sink.send(batch) == []
    assert target.stored(stream) == 10  # the documented caveat: _id is unique per backing index only

    daily = target.sink(index_mode="daily")
    assert daily.send(batch) == [] and daily.send(batch) == []
    pattern = f"forwarder-crusoe.audit-{target.namespace}-*"
    assert target.stored(pattern) == 5
    assert target.stored(f"forwarder-crusoe.audit-{target.namespace}-2025.01.15") == 5  # the events' own day
    assert target.stored("forwarder-audit") >= 5  # the read alias


def test_daily_index_follows_each_events_own_utc_day(server):
    sink = local_sink(server, index_mode="daily")
    assert sink.send(events(30)) == []  # one event per hour from 2025-01-15T12:00Z
    assert sorted(server.indices) == ["forwarder-crusoe.audit-default-2025.01.15", "forwarder-crusoe.audit-default-2025.01.16"]
    assert server.count("forwarder-crusoe.audit-default-2025.01.15") == 12


# -- setup ------------------------------------------------------------------------------

def test_setup_is_idempotent(target):
    config = target.config()
    first = setup(config)
    assert all(("created" in line or "updated" in line or "unchanged" in line) for line in first[:-1])
    second = setup(config)
    assert [line.rsplit(": ", 1)[1] for line in second[:-1]] == ["unchanged"] * 5
    assert "verified" in second[-1]
    client = target.client()
    version = client.ilm.get_lifecycle(name="forwarder")["forwarder"]["version"]
    setup(config)
    assert client.ilm.get_lifecycle(name="forwarder")["forwarder"]["version"] == version
    changed = setup(target.config(retention="30d"))
    assert "ILM policy forwarder: updated" in changed[0] and changed[2].endswith("unchanged")
    setup(config)  # leave the shared cluster as the other tests expect


def test_setup_resolves_our_template_for_new_streams(server):
    setup(Target(server.url, {}, server, "default").config())
    sim = requests.post(f"{server.url}/_index_template/_simulate_index/{STREAM}").json()
    assert sim["template"]["settings"]["index"]["lifecycle"]["name"] == "forwarder"
    assert sim["template"]["mappings"]["properties"]["crusoe"]["properties"]["audit"]["properties"]["details"]["type"] == "flattened"
    assert [t["name"] for t in sim["overlapping"]] == ["logs"]


def test_setup_reports_a_template_that_shadows_ours(server):
    requests.put(f"{server.url}/_index_template/someone-else", json={"index_patterns": ["logs-forwarder_*"], "priority": 500, "data_stream": {}}).raise_for_status()
    with pytest.raises(SetupError, match="would not use index template 'forwarder'"):
        setup(Target(server.url, {}, server, "default").config())


def test_setup_with_a_writer_key_is_refused_in_one_line(monkeypatch):
    es = _local("8.17.0", api_keys={"w1": ("writer-secret-value", "writer")})
    try:
        monkeypatch.setenv("ES_KEY", "w1:writer-secret-value")
        tgt = Target(es.url, {"api_key": "env:ES_KEY"}, es, "default")
        with pytest.raises(AuthError) as err:
            setup(tgt.config())
        assert "403" in str(err.value) and "writer-secret-value" not in str(err.value)
        assert tgt.sink().send(events(2)) == []  # a writer may still bulk-create
    finally:
        es.stop()


def test_cli_setup_elasticsearch_twice(server, tmp_path, capsys):
    path = tmp_path / "forwarder.toml"
    path.write_text(f'[[sink]]\nname = "es"\ntype = "elasticsearch"\nhosts = ["{server.url}"]\n')
    assert cli.main(["setup", "elasticsearch", "-c", str(path)]) == 0
    assert "index template forwarder: created" in capsys.readouterr().out
    assert cli.main(["setup", "elasticsearch", "-c", str(path), "--sink", "es"]) == 0
    assert "index template forwarder: unchanged" in capsys.readouterr().out
    assert cli.main(["setup", "elasticsearch", "-c", str(path), "--sink", "nope"]) == 2


# -- auth, versions, the client ---------------------------------------------------------

@pytest.mark.parametrize("form", ["id:key", "encoded", "basic"])
def test_credentials(form, monkeypatch):
    es = _local("9.1.0", api_keys={"k1": ("s3cr3t-api-key", "admin")}, users={"elastic": ("s3cr3t-password", "admin")})
    try:
        if form == "basic":
            monkeypatch.setenv("ES_PW", "s3cr3t-password")
            auth = {"username": "elastic", "password": "env:ES_PW"}
        else:
            value = "k1:s3cr3t-api-key"
            monkeypatch.setenv("ES_KEY", value if form == "id:key" else base64.b64encode(value.encode()).decode())
            auth = {"api_key": "env:ES_KEY"}
        assert Target(es.url, auth, es, "default").sink().send(events(2)) == []
        monkeypatch.setenv("ES_KEY", "k1:wrong-key-value")
        with pytest.raises(AuthError) as err:
            Target(es.url, {"api_key": "env:ES_KEY"}, es, "default").sink().send(events(2))
        assert "401" in str(err.value) and "wrong-key-value" not in str(err.value)
    finally:
        es.stop()


def test_cloud_id_points_the_client_at_the_deployment(monkeypatch):
    monkeypatch.setenv("ES_KEY", "k1:s3cr3t-api-key")
    cloud_id = "prod:" + base64.b64encode(b"eu-west-1.aws.found.io$abc123$kib456").decode()
    table = {"name": "es", "type": "elasticsearch", "cloud_id": cloud_id, "api_key": "env:ES_KEY"}
    sink = ElasticsearchSink(parse_config({"sink": [table]}).sinks[0])
    assert [node.base_url for node in sink.client.transport.node_pool.all()] == ["https://abc123.eu-west-1.aws.found.io:443"]


def test_the_official_client_is_used_unmodified(server):
    sink = local_sink(server)
    assert type(sink.client) is elasticsearch.Elasticsearch
    package = os.path.dirname(elasticsearch.__file__)
    assert inspect.getsourcefile(type(sink.client).bulk).startswith(package)  # not patched from outside
    sink.send(events(1))
    headers = server.bulk_headers[-1]
    assert headers["x-elastic-client-meta"].startswith(f"es={elasticsearch.__versionstr__},")
    assert headers["content-type"] == "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
    assert headers["accept"] == "application/vnd.elasticsearch+json; compatible-with=8"


def test_an_8x_server_refuses_a_9x_client_header_and_9x_accepts_8(server):
    body = b'{"create":{"_index":"logs-forwarder_x.audit-default"}}\n{"@timestamp":"2025-01-01T00:00:00Z"}\n'
    v9 = {"Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=9", "Accept": "application/vnd.elasticsearch+json; compatible-with=9"}
    answer = requests.put(f"{server.url}/_bulk", data=body, headers=v9)
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "media_type_header_exception"
    es9 = _local("9.1.0")
    try:
        assert requests.put(f"{es9.url}/_bulk", data=body, headers=v9).status_code == 200
        assert local_sink(es9).send(events(1)) == []  # client 8 talks to 9
    finally:
        es9.stop()


def test_a_refused_compatibility_header_is_explained():
    es = _local("7.17.0")  # accepts compatible-with=7 or 6, so the 8.x client's requests are refused
    try:
        for attempt in (lambda s: s.check(), lambda s: s.send(events(1))):
            with pytest.raises(SinkError) as err:
                attempt(local_sink(es))
            assert "media_type_header_exception" in str(err.value) and "elasticsearch>=8.13,<9" in str(err.value)
        assert es.bulk_requests == 0
    finally:
        es.stop()


def test_check(server):
    sink = local_sink(server)
    with pytest.raises(SinkError) as missing:
        sink.check()
    assert "Elasticsearch 8.17.0" in str(missing.value) and "index template 'forwarder' is missing" in str(missing.value)
    assert "siem-forwarder setup elasticsearch" in str(missing.value)
    setup(Target(server.url, {}, server, "default").config())
    assert sink.check().endswith("installed")


def test_a_server_that_is_not_elasticsearch_is_named_as_such():
    class NotElasticsearch(ElasticsearchServer):
        def dispatch(self, request):
            resp = super().dispatch(request)
            resp.headers.pop("X-Elastic-Product", None)
            return resp

    impostor = NotElasticsearch().start()
    try:
        with pytest.raises(SinkError, match="not Elasticsearch"):
            local_sink(impostor).check()
        with pytest.raises(SinkError, match="not Elasticsearch"):
            local_sink(impostor).send(events(1))
    finally:
        impostor.stop()


def test_tls_is_verified_and_the_configured_ca_bundle_beats_the_environment(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path, "es-test")
    (tmp_path / "corp").mkdir()
    corporate, _ = self_signed(tmp_path / "corp", "corporate-ca")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests would let these replace a configured bundle
        monkeypatch.setenv(name, str(corporate))
    es = ElasticsearchServer(tls=server_context(cert, key)).start()
    try:
        target = Target(es.url, {}, es, "default")
        with pytest.raises(SinkError, match="cannot reach Elasticsearch: TLS error: certificate verify failed"):
            target.sink(http={"retries": 0}).send(events(1))
        assert es.bulk_requests == 0
        assert target.sink(http={"ca_bundle": str(cert)}).send(events(2)) == []
        assert target.sink(http={"verify": False}).send(events(1, start=2)) == []
        assert es.count(STREAM) == 3
    finally:
        es.stop()


def test_unreachable_hosts_fail_after_the_retries():
    sink = Target("http://127.0.0.1:9", {}, None, "default").sink(http={"retries": 1})
    with pytest.raises(SinkError, match="cannot reach Elasticsearch: Connection error: Connection refused"):
        sink.send(events(1))


def test_a_second_host_takes_over(server):
    sink = Target("http://127.0.0.1:9", {}, None, "default").sink(hosts=["http://127.0.0.1:9", server.url])
    assert sink.send(events(3)) == [] and server.count(STREAM) == 3


@pytest.mark.parametrize("table, problem", [
    ({"hosts": ["http://a:9200"], "cloud_id": "x:eA=="}, "exactly one"),
    ({"hosts": []}, "exactly one"),
    ({"hosts": ["a:9200"]}, "http://"),
    ({"hosts": ["elastic:s3cr3t@es:9200"]}, "host 1 is not an http"),
    ({"hosts": ["https://es:9200", "https://elastic:s3cr3t@es:9200"]}, "host 2 must not carry credentials"),
    ({"hosts": ["http://a:9200"], "username": "u"}, "together"),
    ({"hosts": ["http://a:9200"], "namespace": "Bad-Name"}, "lowercase"),
    ({"hosts": ["http://a:9200"], "index_mode": "weekly"}, "data_stream, daily"),
])
def test_config_errors_name_the_key(table, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        parse_config({"sink": [{"name": "es", "type": "elasticsearch", **table}]})
    assert "s3cr3t" not in str(err.value)


# -- the server's own strictness (what the sink relies on being checked) -----------------

def test_server_rules(server):
    url = f"{server.url}/_bulk"
    nd = {"Content-Type": "application/x-ndjson"}
    doc = b'{"@timestamp":"2025-01-01T00:00:00Z"}\n'
    assert requests.post(url, data=b'{"create":{"_index":"logs-a-b"}}\n{"@timestamp":"2025-01-01T00:00:00Z"}', headers=nd).status_code == 400
    items = requests.post(url, data=b'{"index":{"_index":"logs-a-b"}}\n' + doc + b'{"create":{"_index":"logs-a-b","_id":"1"}}\n{"a":1}\n', headers=nd).json()["items"]
    assert items[0]["index"]["status"] == 400 and "op_type of create" in items[0]["index"]["error"]["reason"]
    assert items[1]["create"]["status"] == 400 and "@timestamp" in items[1]["create"]["error"]["reason"]
    filtered = requests.post(url + "?filter_path=errors,items.*.status", data=b'{"create":{"_index":"logs-a-b","_id":"2"}}\n' + doc, headers=nd)
    assert filtered.json() == {"errors": False, "items": [{"create": {"status": 201}}]}
    assert filtered.headers["X-Elastic-Product"] == "Elasticsearch"
    same = requests.put(f"{server.url}/_index_template/clash", json={"index_patterns": ["logs-x-*"], "priority": 100})
    assert same.status_code == 400 and "same priority" in same.json()["error"]["reason"]
    missing = requests.put(f"{server.url}/_index_template/t", json={"index_patterns": ["q-*"], "composed_of": ["nope"]})
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "invalid_index_template_exception"
    strict = requests.put(f"{server.url}/_index_template/s", json={"index_patterns": ["s-*"], "template": {"mappings": {"dynamic": "strict", "properties": {"a": {"type": "long"}}}}})
    assert strict.status_code == 200
    items = requests.post(url, data=b'{"index":{"_index":"s-1"}}\n{"b":1}\n{"index":{"_index":"s-1"}}\n{"a":"x"}\n', headers=nd).json()["items"]
    assert [i["index"]["error"]["type"] for i in items] == ["strict_dynamic_mapping_exception", "document_parsing_exception"]
    assert requests.post(url, data=doc, headers={"Content-Type": "text/plain"}).status_code == 406


def test_the_bulk_body_goes_to_the_transport_as_built_without_copies():
    """The client's ndjson serializer copied each bulk body twice (a bytearray, then bytes)."""
    from forwarder.http import HttpSettings
    from forwarder.sinks.elasticsearch import build_client

    options = {"hosts": ["http://127.0.0.1:9"], "compress": False, "api_key": None, "username": None, "password": None,
               "cloud_id": None}
    serializers = build_client(options, HttpSettings()).transport.serializers
    body = b'{"create":{"_id":"a"}}\n{"x":1}\n'
    for mimetype in ("application/x-ndjson", "application/vnd.elasticsearch+x-ndjson"):
        assert serializers.dumps(body, mimetype) is body
        assert serializers.dumps([{"create": {}}, {"x": 1}], mimetype) == b'{"create":{}}\n{"x":1}\n'
        assert serializers.dumps(b'{"x":1}', mimetype) == b'{"x":1}\n'  # unterminated: the client's rule
