"""The Splunk HEC sink against the strict HEC test server (tests/servers/hec.py).

Every row of HEC's response-code table is provoked and the sink's documented
reaction checked; plus batching, gzip, 413 splitting, indexer acknowledgement
(lost, late, re-sent), failover, check(), TLS and config validation.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import threading

import pytest

from forwarder import jsoncodec
from forwarder.config import SourceConfig, parse_config
from forwarder.deadletter import DeadLetters
from forwarder.errors import AuthError, ConfigError, HttpError, SinkError
from forwarder.event import AuditEvent
from forwarder.http import HttpSettings
from forwarder.pipeline import Pipeline
from forwarder.simulators.base import Response, Simulator
from forwarder.sinks.splunk_hec import SplunkHecSink
from forwarder.sources.base import Page, Source
from forwarder.splunk_event import hec_event, sourcetype_for
from forwarder.state import SqliteStore
from forwarder.timeutil import now
from tests.servers.hec import HecServer, HecToken
from tests.servers.tls import self_signed, server_context

TOKEN = "5f4c2a1e-9b7d-4e3f-8a6c-1d2e3f4a5b6c"
ACK_TOKEN = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
OTHER = "99999999-8888-4777-8666-555555555555"


def event(i: int, vendor: str = "crusoe") -> AuditEvent:
    return AuditEvent.build(
        vendor=vendor,
        product="audit",
        raw={"i": i, "who": f"user{i}@example.com", "what": "login"},
        timestamp=dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i),
        action="login",
        outcome="success",
    )


def events(n: int, vendor: str = "crusoe") -> list[AuditEvent]:
    return [event(i, vendor) for i in range(n)]


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv("HEC_TOKEN", TOKEN)
    monkeypatch.setenv("HEC_ACK_TOKEN", ACK_TOKEN)
    monkeypatch.setenv("HEC_OTHER", OTHER)


@pytest.fixture
def server():
    with HecServer(
        [
            HecToken(TOKEN, name="fwd", indexes=("audit", "main")),
            HecToken(ACK_TOKEN, name="fwd-ack", ack=True),
            HecToken(OTHER, name="off", enabled=False),
        ]
    ) as srv:
        yield srv


def make_sink(urls, token="env:HEC_TOKEN", retries=3, **options) -> SplunkHecSink:
    table = {
        "name": "splunk",
        "type": "splunk_hec",
        "url": urls,
        "token": token,
        "http": {"retries": retries, "backoff_base": 0.001, "backoff_max": 0.005},
        **options,
    }
    sink = SplunkHecSink(parse_config({"sink": [table]}).sinks[0])
    sink.sleeps = []
    sink.client.sleep = sink.sleeps.append  # record backoff instead of sleeping
    return sink


def posts(server, path="/services/collector/event"):
    return [s for s in server.requests_seen if s.path == path]


# -- wire format ---------------------------------------------------------------


def test_envelope_carries_time_metadata_and_whole_event(tokens, server):
    sink = make_sink(server.url, index="audit", host="fw01", source="siem-forwarder")
    batch = events(3) + events(2, "hpe_greenlake")
    assert sink.send(batch) == []
    assert len(server.indexed) == 5
    first = server.indexed[0]
    assert first.time == 1714557600.123  # epoch seconds, millisecond precision
    assert (first.index, first.host, first.source, first.sourcetype) == ("audit", "fw01", "siem-forwarder", "crusoe:cloud:audit")
    assert first.event == jsoncodec.loads(jsoncodec.dumps(batch[0].to_dict()))
    assert first.event["raw"] == {"i": 0, "who": "user0@example.com", "what": "login"}
    assert [e.sourcetype for e in server.indexed[3:]] == ["hpe:greenlake:audit"] * 2
    (post,) = posts(server)
    assert post.headers["content-encoding"] == "gzip"
    assert post.headers["content-type"] == "application/json"
    assert post.headers["authorization-scheme"] == "Splunk"
    assert post.headers["x-splunk-request-channel"] == sink.channel


def test_only_documented_envelope_keys_and_token_defaults_when_unset(tokens, server):
    envelope = hec_event(event(1), index=None, host=None, source=None)
    assert set(envelope) == {"time", "sourcetype", "event"}
    sink = make_sink(server.url, gzip=False)
    sink.send(events(4))
    assert [(e.index, e.host, e.source) for e in server.indexed] == [("main", "hec-test-indexer", "http:fwd")] * 4
    assert "content-encoding" not in posts(server)[0].headers


def test_sourcetype_table_and_overrides(tokens, server):
    assert sourcetype_for(event(0, "progress_mft")) == "progress:mft:audit"
    assert sourcetype_for(event(0, "carbon_black_cloud")) == "vmware:cbc:audit"
    assert sourcetype_for(event(0, "new_vendor")) == "new_vendor:audit"
    sink = make_sink(server.url, sourcetypes={"crusoe": "crusoe:custom", "hpe_greenlake.audit": "glp"})
    sink.send(events(1) + events(1, "hpe_greenlake") + events(1, "progress_mft"))
    assert [e.sourcetype for e in server.indexed] == ["crusoe:custom", "glp", "progress:mft:audit"]


def test_batches_are_cut_under_batch_bytes(tokens):
    with HecServer([HecToken(TOKEN)], max_content_length=4096) as srv:
        sink = make_sink(srv.url, gzip=False, batch_bytes=4096)
        batch = events(40)
        assert sink.send(batch) == []
        assert srv.ids() == [e.id for e in batch]
        statuses = [p.status for p in posts(srv)]
        assert len(statuses) > 5 and set(statuses) == {200}  # never over the server's limit


def test_413_splits_the_batch_until_it_fits(tokens):
    with HecServer([HecToken(TOKEN)], max_content_length=3000) as srv:
        sink = make_sink(srv.url, gzip=False)
        batch = events(30)
        assert sink.send(batch) == []
        assert srv.ids() == [e.id for e in batch]  # every event once, in order
        assert 413 in [p.status for p in posts(srv)]


def test_413_on_a_single_event_rejects_it_and_delivers_the_rest(tokens):
    with HecServer([HecToken(TOKEN)], max_content_length=2000) as srv:
        sink = make_sink(srv.url, gzip=False)
        batch = events(4)
        batch[2].details = {"blob": "x" * 5000}
        rejected = sink.send(batch)
        assert [r.event.id for r in rejected] == [batch[2].id]
        assert "413" in rejected[0].reason
        assert srv.ids() == [batch[0].id, batch[1].id, batch[3].id]


# -- the response-code table -----------------------------------------------------


@pytest.mark.parametrize("code,status", [(8, 500), (9, 503), (18, 503), (19, 503), (20, 503), (23, 503), (26, 429), (27, 429)])
def test_retryable_codes_are_retried_then_everything_is_indexed_once(tokens, server, code, status):
    server.inject(2, code)
    sink = make_sink(server.url)
    batch = events(5)
    assert sink.send(batch) == []
    assert server.ids() == [e.id for e in batch]
    assert [(p.status, p.code) for p in posts(server)] == [(status, code), (status, code), (200, 0)]
    assert len(sink.sleeps) == 2  # backed off before each retry


def test_busy_longer_than_the_retries_fails_with_one_line(tokens, server):
    server.inject(10, 9)
    sink = make_sink(server.url, retries=2)
    with pytest.raises(HttpError) as info:
        sink.send(events(3))
    assert "HTTP 503" in str(info.value) and "Server is busy" in str(info.value)
    assert len(posts(server)) == 3 and server.indexed == []


def test_retry_after_is_honoured(tokens, server):
    server.inject(1, 26, retry_after=0.05)
    sink = make_sink(server.url)
    sink.send(events(1))
    assert sink.sleeps[0] >= 0.05


@pytest.mark.parametrize("code", [24, 25])
def test_approaching_capacity_is_success_followed_by_a_pause(tokens, server, code):
    server.inject(1, code)
    sink = make_sink(server.url)
    batch = events(3)
    assert sink.send(batch) == []
    assert server.ids() == [e.id for e in batch]
    assert [(p.status, p.code) for p in posts(server)] == [(200, code)]
    assert sink.sleeps == [0.001]


@pytest.mark.parametrize(
    "token_ref,header,code,status,words",
    [
        ("env:HEC_OTHER", None, 1, 403, "token disabled"),
        ("env:HEC_TOKEN", "", 2, 401, "token is required"),
        ("env:HEC_TOKEN", "Bearer " + TOKEN, 3, 401, "invalid authorization"),
        ("env:UNKNOWN_TOKEN", None, 4, 403, "invalid token"),
    ],
)
def test_auth_codes_fail_at_once_naming_the_code(tokens, server, monkeypatch, token_ref, header, code, status, words):
    monkeypatch.setenv("UNKNOWN_TOKEN", "deadbeef-0000-4000-8000-00000000dead")
    sink = make_sink(server.url, token=token_ref)
    if header == "":
        del sink.client.session.headers["Authorization"]
    elif header:
        sink.client.session.headers["Authorization"] = header
    with pytest.raises(AuthError) as info:
        sink.send(events(2))
    msg = str(info.value)
    assert f"HTTP {status}" in msg and f"HEC code {code}: {words}" in msg
    assert TOKEN not in msg and "deadbeef" not in msg and "\n" not in msg
    assert [p.code for p in posts(server)] == [code]  # never retried
    assert server.indexed == []


def _bad_line(sink, monkeypatch, bad: AuditEvent, line: bytes):
    """Make the encoder emit ``line`` for event ``bad`` (our encoder never builds a bad envelope)."""
    encode = sink.encode

    def with_bad(evs):
        return [line if e is bad else encoded for e, encoded in zip(evs, encode(evs))]

    monkeypatch.setattr(sink, "encode", with_bad)


@pytest.mark.parametrize(
    "code,line",
    [
        (6, b'{"event": null}'),
        (12, b'{"time": 1714557600.0}'),
        (13, b'{"event": "   "}'),
        (15, b'{"event": {"a": 1}, "fields": {"nested": {"x": "y"}}}'),
    ],
)
def test_one_bad_event_is_rejected_and_only_the_rest_resent(tokens, server, monkeypatch, code, line):
    sink = make_sink(server.url)
    batch = events(6)
    _bad_line(sink, monkeypatch, batch[2], line)
    rejected = sink.send(batch)
    assert [r.event.id for r in rejected] == [batch[2].id]
    assert f"splunk hec code {code}" in rejected[0].reason
    assert server.ids() == [e.id for e in batch if e is not batch[2]]  # no duplicates, nothing lost
    assert [(p.status, p.code, p.objects) for p in posts(server)] == [(400, code, 2), (200, 0, 3)]


def test_with_acks_the_unconfirmed_prefix_is_resent_too(tokens, server, monkeypatch):
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True)
    batch = events(5)
    _bad_line(sink, monkeypatch, batch[3], b'{"event": ""}')
    rejected = sink.send(batch)
    assert [r.event.id for r in rejected] == [batch[3].id]
    ids = server.ids()
    assert set(ids) == {e.id for e in batch} - {batch[3].id}
    assert sorted(ids) == sorted([e.id for e in batch[:3]] * 2 + [batch[4].id])  # at-least-once: prefix twice


def test_index_not_allowed_is_a_config_error_not_dead_letters(tokens, server):
    sink = make_sink(server.url, index="secret")
    with pytest.raises(SinkError) as info:
        sink.send(events(3))
    assert "HEC code 7: incorrect index" in str(info.value)
    assert server.indexed == [] and len(posts(server)) == 1
    assert posts(server)[0].code == 7


def test_no_data_and_channel_codes_are_fatal(tokens, server, monkeypatch):
    sink = make_sink(server.url)
    sink.channel = "not-a-guid"
    with pytest.raises(SinkError, match="HEC code 11: invalid data channel"):
        sink.send(events(1))
    ack_sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True)
    ack_sink.channel = ""
    with pytest.raises(SinkError, match="HEC code 10: data channel is missing"):
        ack_sink.send(events(1))
    empty = make_sink(server.url)
    monkeypatch.setattr(empty, "encode", lambda evs: [b" "] * len(evs))
    with pytest.raises(SinkError, match="HEC code 5: no data"):
        empty.send(events(1))
    assert [p.code for p in posts(server)] == [11, 10, 5] and server.indexed == []


def test_a_200_that_is_not_hec_fails_the_delivery(tokens):
    class NotHec(Simulator):
        VENDOR = "web"

        def setup(self):
            self.route("POST", "/services/collector/event", lambda request: Response(200, b"<html>OK</html>"))

    with NotHec() as web:
        with pytest.raises(SinkError, match="without HEC's success answer"):
            make_sink(web.url).send(events(1))


# -- indexer acknowledgement -------------------------------------------------------


def test_acks_are_polled_on_the_same_channel_and_read_once(tokens, server):
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True, batch_bytes=2048, gzip=False)
    batch = events(20)
    assert sink.send(batch) == []
    assert server.ids() == [e.id for e in batch]
    polls = posts(server, "/services/collector/ack")
    assert polls and {p.headers["x-splunk-request-channel"] for p in polls} == {sink.channel}
    assert not server._channels[sink.channel].ready  # every ackId was read (once)


def test_late_acks_are_polled_until_true_without_a_resend(tokens, server):
    server.ack_delay = 3  # every ackId reads false three times (indexing takes a while)
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True, batch_bytes=2048, gzip=False)
    batch = events(20)
    assert sink.send(batch) == []
    assert server.ids() == [e.id for e in batch]  # each once: nothing sent again
    assert len(posts(server)) > 1 and len(posts(server, "/services/collector/ack")) == 4  # one poll for all ids per round
    assert len(sink.sleeps) == 3 and not server._channels[sink.channel].ready


def test_lost_ack_with_events_indexed_is_resent_and_duplicates_only_that_request(tokens, server):
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True, batch_bytes=2048, ack_timeout=0.2, ack_poll=0.02)
    server.lose_acks(1, indexed=True)
    batch = events(20)
    assert sink.send(batch) == []
    ids = server.ids()
    first_request = posts(server)[0].objects
    assert set(ids) == {e.id for e in batch}
    assert len(ids) == len(batch) + first_request
    assert sorted(ids) == sorted([e.id for e in batch] + [e.id for e in batch[:first_request]])


def test_lost_ack_with_events_lost_is_recovered_by_the_resend(tokens, server):
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True, ack_timeout=0.1, ack_poll=0.02)
    server.lose_acks(1, indexed=False)
    batch = events(10)
    assert sink.send(batch) == []
    assert server.ids() == [e.id for e in batch]  # exactly once
    assert len(posts(server)) == 2


def test_never_acknowledged_fails_after_the_resends(tokens, server):
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True, ack_timeout=0.05, ack_poll=0.01, ack_resends=2)
    server.lose_acks(100, indexed=False)
    with pytest.raises(SinkError, match="5 events not acknowledged by Splunk after 3 attempts"):
        sink.send(events(5))
    assert len(posts(server)) == 3


def test_ack_on_but_token_without_acks_fails_clearly(tokens, server):
    sink = make_sink(server.url, ack=True)
    with pytest.raises(SinkError, match="without an ackId"):
        sink.send(events(1))


def test_ack_off_on_an_ack_token_still_delivers_and_warns(tokens, server, caplog):
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN")
    with caplog.at_level(logging.WARNING):
        assert sink.send(events(3)) == []
    assert len(server.indexed) == 3
    assert "set ack = true" in caplog.text and ACK_TOKEN not in caplog.text


# -- several indexers ----------------------------------------------------------------


def test_round_robin_over_indexers_with_acks_polled_where_sent(tokens):
    with HecServer([HecToken(ACK_TOKEN, ack=True)]) as a, HecServer([HecToken(ACK_TOKEN, ack=True)]) as b:
        sink = make_sink([a.url, b.url], token="env:HEC_ACK_TOKEN", ack=True, batch_bytes=2048)
        batch = events(30)
        assert sink.send(batch) == []
        assert sorted(a.ids() + b.ids()) == sorted(e.id for e in batch)
        assert a.indexed and b.indexed
        assert posts(a, "/services/collector/ack") and posts(b, "/services/collector/ack")


def test_fails_over_on_5xx_and_on_a_dead_indexer(tokens, server):
    with HecServer([HecToken(TOKEN)]) as busy:
        busy.inject(5, 8)
        sink = make_sink([busy.url, server.url])
        sink.send(events(2))
        assert [p.code for p in posts(busy)] == [8] and len(server.indexed) == 2
        dead = busy.url
    # ``busy`` is stopped now: its port refuses connections
    sink = make_sink([dead, server.url])
    sink.send(events(3))
    assert len(server.indexed) == 5


def test_a_cut_response_is_resent_at_least_once(tokens, server):
    server.cut_responses(1)
    sink = make_sink(server.url)
    batch = events(4)
    assert sink.send(batch) == []
    assert server.ids() == [e.id for e in batch] * 2  # indexed, answer lost, sent again


# -- check ----------------------------------------------------------------------------


def test_check_probes_health_token_and_ack_without_indexing(tokens, server):
    assert "healthy, token accepted, ack on" in make_sink(server.url, token="env:HEC_ACK_TOKEN", ack=True).check()
    assert "set ack = true" in make_sink(server.url, token="env:HEC_ACK_TOKEN").check()
    assert make_sink(server.url).check().endswith("ack off")
    assert server.indexed == [] and server.indexed_count == 0
    with pytest.raises(SinkError, match="HEC code 14"):
        make_sink(server.url, ack=True).check()
    with pytest.raises(AuthError, match="HEC code 1: token disabled"):
        make_sink(server.url, token="env:HEC_OTHER").check()
    server.healthy = False
    with pytest.raises(SinkError, match="HEC code 18"):
        make_sink(server.url).check()


# -- TLS and config -------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path):
    cert, key = self_signed(tmp_path, "hec-test")
    with HecServer([HecToken(TOKEN)], tls=server_context(cert, key)) as srv:
        yield srv, str(cert)


def test_tls_is_verified_by_default_and_a_ca_bundle_is_trusted(tokens, tls_server):
    srv, ca = tls_server
    with pytest.raises(HttpError, match="TLS failure"):
        make_sink(srv.url).send(events(1))
    assert srv.indexed == []
    table = {"name": "s", "type": "splunk_hec", "url": srv.url, "token": "env:HEC_TOKEN", "http": {"ca_bundle": ca}}
    sink = SplunkHecSink(parse_config({"sink": [table]}).sinks[0])
    sink.send(events(2))
    assert len(srv.indexed) == 2


@pytest.mark.parametrize(
    "extra,key,words",
    [
        ({"url": []}, "url", "at least one"),
        ({"url": "ftp://x"}, "url", "not an http(s) URL"),
        ({"url": "https://s:8088/services/collector/event"}, "url", "base URL without the path"),
        ({"url": "https://s:8088/?token=abc"}, "url", "query string"),
        ({"token": TOKEN}, "token", "literal values are not accepted"),
        ({"sourcetypes": {"crusoe": ""}}, "sourcetypes", "non-empty sourcetype"),
        ({"batch_bytes": 10}, "batch_bytes", "at least"),
    ],
)
def test_config_errors_name_the_key(tokens, extra, key, words):
    table = {"name": "s", "type": "splunk_hec", "url": "https://s:8088", "token": "env:HEC_TOKEN", **extra}
    with pytest.raises(ConfigError) as info:
        parse_config({"sink": [table]})
    assert f'sink "s".{key}' in str(info.value) and words in str(info.value)
    assert TOKEN not in str(info.value) and "abc" not in str(info.value)


def test_requests_are_gzipped_at_level_2_by_default(tokens):
    """Level 2 (zlib's scale): the lowest CPU per byte saved (bench/bench_splunk_hec.py), written by
    forwarder.compression; any gzip reader gets the lines back."""
    from forwarder import compression

    sink = make_sink("https://127.0.0.1:8088")
    lines = sink.encode(events(50))
    body = b"\n".join(lines)
    try:
        assert sink.gzip_level == 2
        assert sink._body(lines) == compression.gzip(body, 2)
        assert gzip.decompress(sink._body(lines)) == body
    finally:
        sink.close()


# -- end to end through the pipeline --------------------------------------------------


class Pages(Source):
    """``pages`` pages of ``per_page`` records; the cursor is the next page number."""

    TYPE = "test"
    VENDOR = "crusoe"

    def __init__(self, store, work_dir, pages: int, per_page: int):
        super().__init__(SourceConfig("src", "test", 60, 0, 60, True, HttpSettings()), store, work_dir)
        self.pages, self.per_page = pages, per_page

    def fetch(self, cursor, start, end):
        for p in range((cursor or {}).get("next", 0), self.pages):
            yield Page([{"i": p * self.per_page + k} for k in range(self.per_page)], {"next": p + 1})

    def normalize(self, record):
        return event(record["i"])


def run_pass(sink, state_dir, source_pages=8, per_page=50, source_class=Pages):
    store = SqliteStore(state_dir)
    pipe = Pipeline([sink], store, DeadLetters(state_dir))
    try:
        result = pipe.run_pass(source_class(store, state_dir, source_pages, per_page), now(), now())
    finally:
        pipe.close()
        store.close()
    return result


def test_busy_then_recovered_with_a_lost_ack_loses_nothing(tokens, server, state_dir):
    server.inject(4, 9)
    server.lose_acks(1, indexed=True)
    sink = make_sink(server.url, token="env:HEC_ACK_TOKEN", retries=5, ack=True, ack_timeout=0.2, ack_poll=0.02, batch_events=120)
    result = run_pass(sink, state_dir)
    assert result.error is None and result.cursor == {"next": 8}
    ids = server.ids()
    everything = [event(i).id for i in range(400)]
    assert set(ids) == set(everything)
    lost_ack = next(p.objects for p in posts(server) if p.status == 200)  # the first accepted request
    assert len(ids) == 400 + lost_ack  # duplicates only where the ack timed out
    assert sorted(ids) == sorted(everything + everything[:lost_ack])


def test_busy_past_the_retries_keeps_the_checkpoint_and_the_next_pass_delivers(tokens, server, state_dir):
    server.inject(3, 18)
    sink = make_sink(server.url, retries=2, batch_events=120)
    first = run_pass(sink, state_dir)
    assert first.error and "HEC is unhealthy" in first.error and first.cursor is None
    assert server.indexed == []
    second = run_pass(make_sink(server.url, retries=2), state_dir)
    assert second.error is None and second.cursor == {"next": 8}
    assert sorted(server.ids()) == sorted(event(i).id for i in range(400))  # all, once


def test_a_partial_batch_is_sent_when_it_is_old_enough(tokens, server, state_dir):
    """Far below batch_events, the first page still goes out once batch_age has passed."""
    delivered = threading.Event()

    class Waiting(Pages):
        def fetch(self, cursor, start, end):
            for page in super().fetch(cursor, start, end):
                yield page
                delivered.wait(10)  # the second page only after a delivery (10 s: age flushing is broken)

    sink = make_sink(server.url, batch_events=1000, batch_age=0.05)
    send = sink.send
    sink.send = lambda evs: (send(evs), delivered.set())[0]
    result = run_pass(sink, state_dir, source_pages=2, source_class=Waiting)
    assert result.error is None and result.cursor == {"next": 2}
    assert [p.objects for p in posts(server)] == [50, 50]
