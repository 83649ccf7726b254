"""Carbon Black Cloud source against its simulator: search, export, queue, check, 429s, mapping."""

import datetime as dt

import pytest

from forwarder.config import SinkConfig, parse_config
from forwarder.deadletter import DeadLetters
from forwarder.errors import AuthError, ConfigError, RecordError, SinkError, SourceError, UnreadableRecord
from forwarder.http import HttpSettings
from forwarder.pipeline import Pipeline
from forwarder.simulators.base import Faults
from forwarder.simulators.carbon_black_cloud import DEMO_API_ID, DEMO_SECRET, CarbonBlackCloudSimulator
from forwarder.sinks.base import Sink
from forwarder.sources.carbon_black_cloud import CarbonBlackCloudSource, iter_json_records, record_key
from forwarder.state import MemoryStore, SqliteStore
from forwarder.timeutil import UTC, format_time, parse_time

SECRET_ENV = "CBTEST_SECRET"
A = dt.datetime(2025, 3, 1, tzinfo=UTC)
B = A + dt.timedelta(hours=1)
YEARS = 20 * 365 * 86400.0


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, DEMO_SECRET)


@pytest.fixture
def sim():
    with CarbonBlackCloudSimulator(seed=7, retention=YEARS) as s:
        yield s


def table(sim, **options):
    return {
        "name": "cb",
        "type": "carbon_black_cloud",
        "base_url": sim.url,
        "org_key": sim.org_key,
        "api_id": DEMO_API_ID,
        "api_secret": f"env:{SECRET_ENV}",
        "rate_limit": 100000.0,
        "poll_interval": 0.001,
        "http": {"backoff_base": 0.01, "backoff_max": 0.05},
        **options,
    }


def make(sim, tmp_path, store=None, **options):
    cfg = parse_config({"source": [table(sim, **options)]}).sources[0]
    return CarbonBlackCloudSource(cfg, store if store is not None else MemoryStore(), tmp_path / "work")


def drain(source, cursor=None, start=A, end=B):
    """Every page of one fetch, running commit hooks as the pipeline would."""
    pages = list(source.fetch(cursor, start, end))
    for page in pages:
        for hook in page.on_committed:
            hook()
    return pages


def keys(records, org="SIMORG01"):
    return [record_key(r, org) for r in records]


class ListSink(Sink):
    TYPE = "list"

    def __init__(self, fail_on_call=None):
        super().__init__(SinkConfig("list", "list", 5, 0.0, HttpSettings()))
        self.events = []
        self.calls = 0
        self.fail_on_call = fail_on_call

    def send(self, events):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise SinkError("sink list: target down")
        self.events.extend(events)
        return []


def run_pass(source, sink, store, tmp_path, start=A, end=B):
    pipeline = Pipeline([sink], store, DeadLetters(tmp_path))
    try:
        return pipeline.run_pass(source, start, end)
    finally:
        pipeline.close()
        source.close()


# -- search ---------------------------------------------------------------------
def test_search_reads_every_window_once_in_time_order(sim, tmp_path):
    pages = drain(make(sim, tmp_path, window="10m", page_size=7))
    records = [r for p in pages for r in p.records]
    expected = sim.records_between(A, B)
    assert len(expected) > 50
    assert keys(records) == keys(expected)  # same records, same (ascending) order, no duplicates
    assert pages[-1].cursor == {"until": format_time(B, 6)}


def test_search_windows_go_into_the_ledger_with_num_found_even_across_a_mid_window_failure(sim, tmp_path):
    store = SqliteStore(tmp_path / "state", ledger_retention=YEARS)
    failing = ListSink(fail_on_call=5)  # about 20 records per window, 7 per page: dies inside the second window
    first = run_pass(make(sim, tmp_path, store, window="20m", page_size=7), failing, store, tmp_path)
    assert first.error and "target down" in first.error
    assert [(e.start, e.end) for e in store.ledger("cb")] == [(A, A + dt.timedelta(minutes=20))]
    assert store.get("cb")["from"] == format_time(A + dt.timedelta(minutes=20), 6)  # the open window's start
    second = run_pass(make(sim, tmp_path, store, window="20m", page_size=7), ListSink(), store, tmp_path)
    assert second.error is None
    entries = store.ledger("cb")
    store.close()
    assert entries[0].start == A and entries[-1].end == B and len(entries) == 3
    assert all(a.end == b.start for a, b in zip(entries, entries[1:]))  # the resumed window starts where the open one did
    for e in entries:
        truth = len(sim.records_between(e.start, e.end))
        assert e.read == e.delivered["list"] == truth  # the failed window counts what was committed before it too
    assert [e.vendor_count for e in entries] == [entries[0].read, None, entries[2].read]  # no count for a resumed window


def test_search_record_at_window_end_belongs_to_next_window(sim, tmp_path):
    expected = sim.records_between(A, B)
    edge = parse_time(expected[30]["create_time"])
    source = make(sim, tmp_path)
    first = drain(source, None, A, edge)
    got = [r for p in first for r in p.records]
    assert keys(got) == keys(expected[:30])  # the simulator's end bound is inclusive; the edge record waits
    rest = drain(source, first[-1].cursor, A, B)
    assert keys(got + [r for p in rest for r in p.records]) == keys(expected)


def test_search_resumes_exactly_from_every_page_cursor(sim, tmp_path):
    end = A + dt.timedelta(minutes=30)
    expected = keys(sim.records_between(A, end))
    times = [r["create_time"] for r in sim.records_between(A, end)]
    assert len(set(times)) < len(times), "precondition: the range holds records sharing a millisecond"
    source = make(sim, tmp_path, page_size=1)
    pages = drain(source, None, A, end)
    delivered = []
    for page in pages[:-1]:
        delivered += keys(page.records)
        resumed = drain(source, page.cursor, A, end)
        assert delivered + keys([r for p in resumed for r in p.records]) == expected
    # at least one page ended between two records sharing a millisecond: its cursor had to name the one delivered
    assert any(len(p.cursor.get("seen", ())) == 1 and times.count(p.cursor["until"][:23] + "Z") == 2 for p in pages)


def test_search_sends_criteria_exclusions_and_query(sim, tmp_path):
    source = make(
        sim, tmp_path, criteria={"actor": ["alice@example.com", "bob@example.com"]}, exclusions={"flagged": True},
        query="description:logged",
    )
    got = [r for p in drain(source) for r in p.records]
    expected = [
        r for r in sim.records_between(A, B)
        if r["actor"] in ("alice@example.com", "bob@example.com") and not r["flagged"] and "logged" in r["description"]
    ]
    assert 0 < len(expected) < len(sim.records_between(A, B)) // 2
    assert keys(got) == keys(expected)


def test_search_windows_delivered_exactly_once_across_restarts(sim, tmp_path):
    store = SqliteStore(tmp_path / "state")
    first = ListSink(fail_on_call=3)
    result = run_pass(make(sim, tmp_path, store, window="15m", page_size=4), first, store, tmp_path)
    assert result.error and "target down" in result.error
    assert 0 < len(first.events) < 50
    second = ListSink()
    result = run_pass(make(sim, tmp_path, store, window="15m", page_size=4), second, store, tmp_path)
    assert result.error is None
    delivered = [e.id for e in first.events + second.events]
    assert sorted(delivered) == sorted(keys(sim.records_between(A, B)))  # each exactly once
    assert store.get("cb") == {"until": format_time(B, 6)}


# -- export ---------------------------------------------------------------------
def test_export_flow_job_poll_download_parse(sim, tmp_path):
    store = SqliteStore(tmp_path / "state")
    sink = ListSink()
    result = run_pass(make(sim, tmp_path, store, mode="export", page_size=25), sink, store, tmp_path)
    assert result.error is None
    assert sorted(e.id for e in sink.events) == sorted(keys(sim.records_between(A, B)))
    assert len(sim.jobs) == 1
    (job,) = sim.jobs.values()
    assert job["reads"] >= sim.job_polls and job["format"] == "json"
    assert not list((tmp_path / "work").rglob("export-*"))  # the downloaded file is gone after the commit
    assert store.scratch_get("cb") == {}
    assert store.get("cb") == {"until": format_time(B, 6)}


def test_export_resumes_the_same_job_after_a_crash(sim, tmp_path):
    store = MemoryStore()
    pages = make(sim, tmp_path, store, mode="export", page_size=10).fetch(None, A, B)
    first = [next(pages), next(pages)]
    pages.close()  # the process "dies" after two delivered pages
    cursor = first[-1].cursor
    assert cursor["done"] == 20
    rest = drain(make(sim, tmp_path, store, mode="export", page_size=10), cursor)
    assert len(sim.jobs) == 1  # no second job
    got = [r for p in first + rest for r in p.records]
    assert keys(got) == keys(sim.records_between(A, B))


def test_export_failed_job_is_an_error_and_is_forgotten(sim, tmp_path):
    sim.fail_jobs = True
    store = MemoryStore()
    with pytest.raises(SourceError, match="FAILED"):
        drain(make(sim, tmp_path, store, mode="export"))
    assert store.scratch_get("cb") == {}


def test_export_job_gone_from_the_vendor_starts_a_new_one(sim, tmp_path):
    store = MemoryStore()
    store.scratch_put("cb", f"export:{format_time(A, 6)}", {"id": 123, "end": format_time(B, 6)})
    got = [r for p in drain(make(sim, tmp_path, store, mode="export")) for r in p.records]
    assert keys(got) == keys(sim.records_between(A, B))
    assert len(sim.jobs) == 1 and 123 not in sim.jobs


@pytest.mark.parametrize("body", ['[{"a": 1},\n{"a": 2}]\n', '{"a": 1}\n{"a": 2}\n', '{"num_found": 2, "results": [{"a": 1}, {"a": 2}]}'])
def test_export_file_layouts(tmp_path, body):
    path = tmp_path / "export.json"
    path.write_text(body)
    assert list(iter_json_records(path)) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("body", ["[{\"a\": 1}, {\"a\": 2}", "[{\"a\": 1} {\"a\": 2}]"])
def test_export_file_parser_rejects_broken_files(tmp_path, body):
    path = tmp_path / "bad.json"
    path.write_text(body)
    with pytest.raises(SourceError, match="bad.json"):
        list(iter_json_records(path))


def test_a_bad_json_line_of_an_export_is_one_unreadable_record(tmp_path):
    path = tmp_path / "lines.json"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    first, bad, last = iter_json_records(path)
    assert (first, last) == ({"a": 1}, {"a": 2}) and isinstance(bad, UnreadableRecord) and bad.text == "not json"


# -- queue ----------------------------------------------------------------------
def spool_files(tmp_path):
    return sorted((tmp_path / "work" / "sources" / "cb" / "spool").glob("*"))


def test_queue_delivers_everything_handed_out_and_cleans_the_spool(tmp_path):
    with CarbonBlackCloudSimulator(seed=3, queue_batch=1000) as sim:
        store = SqliteStore(tmp_path / "state")
        sink = ListSink()
        result = run_pass(make(sim, tmp_path, store, mode="queue"), sink, store, tmp_path)
        assert result.error is None
        handed = sim.handed_out[DEMO_API_ID]
        assert len(handed) >= 3 * 24 * 60 - 2  # a new key starts three days back
        assert sorted(e.id for e in sink.events) == sorted(keys(handed))
        assert spool_files(tmp_path) == []
        again = ListSink()
        assert run_pass(make(sim, tmp_path, store, mode="queue"), again, store, tmp_path).error is None
        assert len(again.events) <= 1  # only what arrived since (one record a minute)


def test_queue_batch_kept_in_spool_when_a_sink_fails_and_replayed_next_pass(tmp_path):
    with CarbonBlackCloudSimulator(seed=3, queue_batch=700) as sim:
        store = SqliteStore(tmp_path / "state")
        first = ListSink(fail_on_call=1)
        result = run_pass(make(sim, tmp_path, store, mode="queue"), first, store, tmp_path)
        assert result.error and first.events == []
        assert spool_files(tmp_path)  # the queue forgot these records; the spool did not
        second = ListSink()
        assert run_pass(make(sim, tmp_path, store, mode="queue"), second, store, tmp_path).error is None
        assert set(keys(sim.handed_out[DEMO_API_ID])) == {e.id for e in second.events}
        assert spool_files(tmp_path) == []


def test_the_api_secret_reaches_no_log_error_state_or_spool_file(tmp_path, caplog):
    caplog.set_level("DEBUG")
    with CarbonBlackCloudSimulator(seed=3, queue_batch=700) as sim:
        store = SqliteStore(tmp_path / "state")
        result = run_pass(make(sim, tmp_path, store, mode="queue"), ListSink(fail_on_call=2), store, tmp_path)
        store.close()
    assert result.error and spool_files(tmp_path)  # state, spool and dead-letter files exist to be searched
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert DEMO_SECRET not in caplog.text + result.error and DEMO_SECRET.encode() not in written


def test_queue_unparseable_spooled_body_is_set_aside_loudly(sim, tmp_path):
    spool = tmp_path / "work" / "sources" / "cb" / "spool"
    spool.mkdir(parents=True)
    (spool / "000000000001.body").write_bytes(b'{"num_found": 2, "results": [{"org_')
    source = make(sim, tmp_path, mode="queue")
    with pytest.raises(SourceError, match="kept as .*000000000001.unparseable"):
        drain(source)
    assert [p.name for p in spool_files(tmp_path)] == ["000000000001.unparseable"]
    assert sim.queue_position(DEMO_API_ID) == sim.keys[DEMO_API_ID]["next"]
    pages = drain(source)  # the next pass goes on with the queue
    assert sum(len(p.records) for p in pages) == len(sim.handed_out[DEMO_API_ID]) > 0


class SpoiledQueue(CarbonBlackCloudSimulator):
    """Clears each batch as usual, then spoils its first ``spoil`` queue answers: ``"json"`` sends
    a complete HTTP answer whose JSON is cut off, ``"wire"`` cuts the body short on the wire."""

    def __init__(self, spoil, how, **kwargs):
        super().__init__(**kwargs)
        self.spoil, self.how = spoil, how

    def _queue(self, request, api_id):
        resp = super()._queue(request, api_id)
        if self.spoil:
            self.spoil -= 1
            if self.how == "json":
                resp.body = resp.body[: len(resp.body) // 2]
            else:
                resp.headers["X-Truncated"] = "1"
        return resp


def test_queue_answer_is_on_disk_before_it_is_parsed_and_kept_bodies_are_never_overwritten(tmp_path):
    with SpoiledQueue(2, "json", seed=3, queue_batch=5) as sim:
        source = make(sim, tmp_path, mode="queue")
        for n in (1, 2):  # two passes: each starts a new spool over the one set-aside body
            with pytest.raises(SourceError, match=f"kept as .*{n:012d}.unparseable"):
                drain(source)
        handed = sim.handed_out[DEMO_API_ID]
        kept = spool_files(tmp_path)
        assert [p.name for p in kept] == ["000000000001.unparseable", "000000000002.unparseable"]
        for path, newest in zip(kept, (handed[4], handed[9])):  # the batch the vendor cleared, newest first
            assert newest["create_time"].encode() in path.read_bytes()
        rest = drain(source)
        assert sorted(keys([r for p in rest for r in p.records])) == sorted(keys(handed[10:]))


def test_queue_answer_broken_on_the_wire_stops_loudly_instead_of_reading_on(tmp_path):
    with SpoiledQueue(1, "wire", seed=3, queue_batch=50) as sim:
        with pytest.raises(SourceError, match="broke off .* cleared its records") as info:
            drain(make(sim, tmp_path, mode="queue"))
        assert "\n" not in str(info.value)
        assert len(sim.handed_out[DEMO_API_ID]) == 50  # no silent retry that reads (and clears) the next batch
        assert spool_files(tmp_path) == []


def test_queue_mode_cannot_read_a_past_range_but_search_can(sim, tmp_path):
    assert make(sim, tmp_path, mode="queue").SUPPORTS_RANGE is False
    assert make(sim, tmp_path, mode="search").SUPPORTS_RANGE is True
    assert make(sim, tmp_path, mode="export").SUPPORTS_RANGE is True
    assert CarbonBlackCloudSource.SUPPORTS_RANGE is True


# -- check ----------------------------------------------------------------------
def test_check_uses_a_one_row_search_and_leaves_the_queue_untouched(sim, tmp_path):
    from forwarder.runner import check

    before = sim.queue_position(DEMO_API_ID)
    config = parse_config({"state": {"dir": str(tmp_path / "state")}, "source": [table(sim, mode="queue")]})
    [(what, ok, summary)] = check(config)  # what `siem-forwarder check` runs
    assert ok and "SIMORG01" in summary and "queue was not read" in summary
    assert sim.queue_position(DEMO_API_ID) == before
    assert sim.handed_out[DEMO_API_ID] == []
    assert [path for _, path, _ in sim.log] == ["/audit_log/v1/orgs/SIMORG01/logs/_search"]


def test_check_with_a_wrong_secret_fails_without_showing_it(sim, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "WRONGSECRET-0123456789")
    with pytest.raises(AuthError) as info:
        make(sim, tmp_path).check()
    assert "401" in str(info.value) and "WRONGSECRET" not in str(info.value)


# -- rate limiting and retries ------------------------------------------------------
def test_429_blocks_every_request_until_retry_after(tmp_path):
    with CarbonBlackCloudSimulator(seed=7, retention=YEARS, rate_limit=4, rate_window=0.3) as sim:
        got = [r for p in drain(make(sim, tmp_path, page_size=6)) for r in p.records]
        assert keys(got) == keys(sim.records_between(A, B))
        assert sim.throttled > 0  # it was throttled…
        assert sim.requests_in_block == 0  # …and never sent a request inside a block


def test_429_block_is_shared_by_every_source_on_the_same_host(sim, tmp_path):
    one, two = make(sim, tmp_path), make(sim, tmp_path, name="cb2")
    assert one.http.limiter is two.http.limiter
    with CarbonBlackCloudSimulator(seed=7) as other:
        assert make(other, tmp_path).http.limiter is not one.http.limiter


def test_5xx_answers_are_retried(tmp_path):
    with CarbonBlackCloudSimulator(seed=7, retention=YEARS, faults=Faults(error_rate=0.3, seed=4)) as sim:
        got = [r for p in drain(make(sim, tmp_path, page_size=10, mode="export")) for r in p.records]
        assert keys(got) == keys(sim.records_between(A, B))
        assert any(status == 503 for _, _, status in sim.log)


def test_two_sources_on_one_host_in_one_run(tmp_path):
    from forwarder.runner import run_once

    with CarbonBlackCloudSimulator(seed=5, queue_batch=2000, rate_limit=5, rate_window=0.3) as sim:
        config = parse_config({
            "state": {"dir": str(tmp_path / "state")},
            "source": [table(sim, name="cb-search", lookback="6h", page_size=50), table(sim, name="cb-queue", mode="queue")],
            "sink": [{"name": "out", "type": "file", "path": str(tmp_path / "out.ndjson")}],
        })
        results = run_once(config)
    assert [(r.source, r.error) for r in results] == [("cb-queue", None), ("cb-search", None)]
    assert results[0].events == len(sim.handed_out[DEMO_API_ID]) and results[1].events >= 300
    assert sim.throttled > 0  # both sources went through the host's one limiter and its 429 blocks


# -- configuration ----------------------------------------------------------------
@pytest.mark.parametrize(
    "options, key, problem",
    [
        ({"mode": "queue", "criteria": {"actor": ["x"]}}, "criteria", "queue cannot filter"),
        ({"mode": "queue", "query": "description:x"}, "query", "queue cannot filter"),
        ({"criteria": {"create_time": {"range": "-1d"}}}, "criteria", "must not contain create_time"),
        ({"exclusions": {"severity": ["x"]}}, "exclusions", "unknown field 'severity'"),
        ({"criteria": {"actor": "alice"}}, "criteria", "non-empty list of strings"),
        ({"criteria": {"flagged": "yes"}}, "criteria", "true or false"),
        ({"base_url": "defense.conferdeploy.net"}, "base_url", "must be an https:// URL"),
        ({"org_key": "ABC/../x"}, "org_key", "org key"),
        ({"mode": "stream"}, "mode", "not one of"),
    ],
)
def test_bad_options_name_the_key(sim, options, key, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        parse_config({"source": [table(sim, **options)]})
    assert info.value.key == f'source "cb".{key}'


# -- normalization ----------------------------------------------------------------
def normalize(record, org="ORGCFG"):
    cfg = parse_config({"source": [{"name": "cb", "type": "carbon_black_cloud", "base_url": "https://cbc.example",
                                    "org_key": org, "api_id": "ID", "api_secret": f"env:{SECRET_ENV}"}]}).sources[0]
    return CarbonBlackCloudSource(cfg, MemoryStore(), "/nonexistent").normalize(record)


SEARCH_RECORD = {
    "org_key": "test",
    "actor_ip": "192.168.0.5",
    "actor": "DEFGHIJKLM",
    "request_url": "https://defense.example.net/appservices/v6/orgs/test/apikeys",
    "description": "Created API key DEFGHIJKLM with access level 'Audit Reader'",
    "flagged": False,
    "verbose": True,
    "create_time": "2024-04-17T19:18:37.480Z",
    "region": "eu",
}


def test_mapping_of_every_field():
    e = normalize(SEARCH_RECORD)
    assert e.vendor == "carbon_black_cloud" and e.product == "audit" and e.dataset == "carbon_black_cloud.audit"
    assert e.timestamp == dt.datetime(2024, 4, 17, 19, 18, 37, 480000, tzinfo=UTC)  # create_time
    assert e.tenant_id == "test"  # org_key of the record wins over the configured one
    assert (e.actor.id, e.actor.name, e.actor.email, e.actor.type) == ("DEFGHIJKLM", "DEFGHIJKLM", None, "api_key")
    assert e.source.ip == "192.168.0.5"  # actor_ip
    assert e.message == SEARCH_RECORD["description"]
    assert (e.action, e.category) == ("create", "iam")
    assert e.outcome == "success"  # flagged false
    assert e.url == SEARCH_RECORD["request_url"]
    assert e.details == {"flagged": False, "verbose": True, "region": "eu"}  # verbose + unknown fields kept
    assert e.raw is SEARCH_RECORD
    assert e.id == record_key(SEARCH_RECORD, "ORGCFG")


def test_mapping_of_a_queue_record_without_flags_and_a_user_actor():
    record = {"org_key": "ABCD1234", "actor_ip": "50.215.71.123", "actor": "user1@mydomain.com", "request_url": None,
              "description": "Logged in successfully", "create_time": "2023-11-02T18:13:44.276Z"}
    e = normalize(record)
    assert (e.actor.id, e.actor.email, e.actor.type) == ("user1@mydomain.com", "user1@mydomain.com", "user")
    assert (e.action, e.category, e.outcome) == ("login", "authentication", "success")
    assert e.url is None and e.details == {"flagged": False, "verbose": False}


def test_flagged_or_failure_wording_means_failure():
    assert normalize({**SEARCH_RECORD, "flagged": True}).outcome == "failure"
    unflagged = {k: v for k, v in SEARCH_RECORD.items() if k != "flagged"}  # the queue omits flagged
    failed = normalize({**unflagged, "description": "bob@example.com failed to log in: invalid password"})
    assert (failed.action, failed.outcome) == ("login", "failure")


def test_org_key_falls_back_to_the_configured_one():
    record = {k: v for k, v in SEARCH_RECORD.items() if k != "org_key"}
    assert normalize(record, org="ORGCFG").tenant_id == "ORGCFG"


@pytest.mark.parametrize(
    "description, action, category",
    [
        ("john.doe@example.com logged in successfully", "login", "authentication"),
        ("alice logged out", "logout", "authentication"),
        ("Live Response session started on device WIN-1", "live_response", "session"),
        ("Updated policy 'Standard'", "update", "configuration"),
        ("Updated connector Training with api key GRJSDHRR8Y", "update", "iam"),
        ("Deleted user bob@example.com", "delete", "iam"),
        ("Added user carol@example.org with role 'Analyst'", "create", "iam"),
        ("Something happened", None, "configuration"),
    ],
)
def test_action_and_category_from_the_description(description, action, category):
    e = normalize({**SEARCH_RECORD, "description": description})
    assert (e.action, e.category) == (action, category)


def test_the_same_record_gets_the_same_id_from_queue_search_and_data_forwarder():
    df = {"actor_ip": "10.10.1.2", "actor": "john.doe@example.com", "create_time": "2025-05-15T12:23:27Z",
          "description": "john.doe@example.com logged in successfully", "org_key": "ABCDE12345"}
    search = {**df, "create_time": "2025-05-15T12:23:27.000Z", "flagged": False, "verbose": False, "request_url": None}
    assert normalize(df).id == normalize(search).id
    assert normalize(df).id == normalize({**search, "request_url": ""}).id  # empty counts as absent (the Data Forwarder omits empty fields)
    for field, other in (("actor_ip", "10.10.1.3"), ("actor", "x@example.com"), ("description", "logged out"),
                         ("create_time", "2025-05-15T12:23:27.001Z"), ("org_key", "OTHER"), ("request_url", "https://x")):
        assert normalize({**search, field: other}).id != normalize(search).id, field


@pytest.mark.parametrize(
    "record, problem",
    [
        ([1, 2], "not an object"),
        ({**SEARCH_RECORD, "create_time": None}, "no create_time"),
        ({**SEARCH_RECORD, "create_time": "yesterday"}, "create_time"),
        ({**SEARCH_RECORD, "actor": 42}, "actor is int"),
        ({**SEARCH_RECORD, "flagged": "yes"}, "flagged is str"),
    ],
)
def test_malformed_records_raise_for_the_dead_letter_file(record, problem):
    with pytest.raises(RecordError, match=problem):
        normalize(record)
