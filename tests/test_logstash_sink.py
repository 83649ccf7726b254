"""The Logstash sink against the strict http-input stub (tests/servers/logstash.py)."""

from __future__ import annotations

import threading

import pytest

from forwarder.config import parse_config
from forwarder.deadletter import DeadLetters
from forwarder.ecs import to_ecs
from forwarder.errors import AuthError, ConfigError, HttpError, SinkError
from forwarder.event import Actor, AuditEvent, Endpoint
from forwarder.pipeline import Pipeline
from forwarder.simulators.base import Response, Simulator
from forwarder.sinks.logstash import LogstashSink
from forwarder.sources.base import Page, Source
from forwarder.state import SqliteStore
from forwarder.timeutil import now
from tests.servers.logstash import LogstashHttpInput
from tests.servers.tls import self_signed, server_context

PASSWORD = "s3cret-logstash-pw"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "retries": 3, "timeout": 10}


def our_input(**kw):
    """The stub configured like logstash/forwarder-http.conf's http input."""
    settings = dict(
        user="forwarder", password=PASSWORD, codec="json_lines", additional_codecs={},
        ecs_compatibility="disabled", remote_host_target_field="[@metadata][input][http][remote_host]",
        request_headers_target_field="[@metadata][input][http][request][headers]",
    )
    settings.update(kw)
    return LogstashHttpInput(**settings)


def make_sink(monkeypatch, url, http=None, **options):
    monkeypatch.setenv("LS_PASSWORD", PASSWORD)
    table = {"name": "ls", "type": "logstash", "url": url, "user": "forwarder", "password": "env:LS_PASSWORD",
             "http": {**FAST, **(http or {})}}
    table.update(options)
    return LogstashSink(parse_config({"sink": [table]}).sinks[0])


def events(n, vendor="crusoe", pad=0):
    return [
        AuditEvent.build(
            vendor=vendor, product="audit", timestamp=1767225600 + i, tenant_id="t1",
            raw={"n": i, "pad": "x" * pad}, action="user.login", outcome="failure" if i % 3 else "success",
            category="authentication", actor=Actor(id=f"u{i}", name=f"user{i}", email=f"user{i}@example.com"),
            source=Endpoint(ip=f"203.0.113.{i % 250}"), message=f"login {i}",
        )
        for i in range(n)
    ]


def without_version(docs):
    return [{k: v for k, v in d.items() if k != "@version"} for d in docs]


def test_documents_arrive_exactly_as_the_ecs_mapping_makes_them(monkeypatch):
    evs = events(25)
    with our_input() as ls:
        sink = make_sink(monkeypatch, ls.url + "/", namespace="prod")
        assert sink.send(evs) == []
        sink.close()
        assert without_version(ls.documents()) == [to_ecs(e, "prod") for e in evs]
        assert ls.statuses == [200]
        content_type, encoding, body = ls.bodies[0]
    assert (content_type, encoding) == ("application/x-ndjson", "gzip")
    assert body.endswith(b"\n") and body.count(b"\n") == 25  # every line terminated, the last included


def test_uncompressed_when_compress_is_off(monkeypatch):
    with our_input() as ls:
        sink = make_sink(monkeypatch, ls.url, compress=False)
        sink.send(events(3))
        assert ls.bodies[0][1] is None and len(ls.events) == 3


def test_batches_are_split_under_batch_bytes_in_order(monkeypatch):
    evs = events(30, pad=300)
    with our_input() as ls:
        sink = make_sink(monkeypatch, ls.url, batch_bytes=2048)
        assert sink.send(evs) == []
        sizes = [len(body) for _, _, body in ls.bodies]
        ids = [d["event"]["id"] for d in ls.documents()]
    assert len(sizes) > 5 and max(sizes) <= 2048
    assert ids == [e.id for e in evs]


def test_429_and_5xx_are_retried_and_each_event_lands_once(monkeypatch):
    with our_input() as ls:
        ls.fail_next(2, 429)
        ls.fail_next(1, 500)
        ls.fail_next(1, 503)
        sink = make_sink(monkeypatch, ls.url, http={"retries": 5})
        assert sink.send(events(10)) == []
        assert ls.statuses == [429, 429, 500, 503, 200]
        assert len(ls.events) == 10


def test_retries_exhausted_raise_and_nothing_is_claimed(monkeypatch):
    with our_input() as ls:
        ls.fail_next(10, 503)
        sink = make_sink(monkeypatch, ls.url, http={"retries": 2})
        with pytest.raises(HttpError) as err:
            sink.send(events(5))
        assert err.value.status == 503 and ls.statuses == [503, 503, 503] and ls.events == []


def test_wrong_password_is_an_auth_error_not_retried_and_not_leaked(monkeypatch):
    with LogstashHttpInput(user="forwarder", password="the-right-one", codec="json_lines") as ls:
        sink = make_sink(monkeypatch, ls.url)
        with pytest.raises(AuthError) as err:
            sink.send(events(2))
        assert ls.statuses == [401]
    assert PASSWORD not in str(err.value)


def test_missing_credentials_get_the_basic_challenge():
    with our_input() as ls:
        import requests

        resp = requests.post(ls.url, data=b"{}\n", headers={"Content-Type": "application/x-ndjson"}, timeout=5)
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic ")
        assert ls.events == []


def test_413_splits_the_request_and_dead_letters_only_the_oversized_event(monkeypatch):
    evs = events(12, pad=200)
    huge = events(1, pad=6000)[0]
    batch = evs[:6] + [huge] + evs[6:]
    with our_input(max_content_length=3000) as ls:
        sink = make_sink(monkeypatch, ls.url)
        rejected = sink.send(batch)
        assert [r.event.id for r in rejected] == [huge.id]
        assert "413" in rejected[0].reason
        assert 413 in ls.statuses
        assert [d["event"]["id"] for d in ls.documents()] == [e.id for e in evs]


def test_other_success_codes_are_not_accepted(monkeypatch):
    with our_input(response_code=204) as ls:
        sink = make_sink(monkeypatch, ls.url)
        with pytest.raises(SinkError, match="response_code => 200"):
            sink.send(events(1))


class NotLogstash(Simulator):
    """A web server that answers 200 with a page: data sent there is lost."""

    def setup(self):
        self.route("POST", r"/.*", lambda request: Response(200, b"<html>welcome</html>", {"Content-Type": "text/html"}))


def test_a_200_without_ok_body_is_not_taken_as_delivery(monkeypatch):
    with NotLogstash() as other:
        sink = make_sink(monkeypatch, other.url)
        with pytest.raises(SinkError, match="is the URL pointing at Logstash"):
            sink.send(events(1))


def test_check_writes_nothing_but_proves_credentials(monkeypatch):
    with our_input() as ls:
        sink = make_sink(monkeypatch, ls.url)
        assert "accepts" in sink.check()
        assert ls.statuses == [200] and ls.events == []


def test_full_queue_blocks_the_request_until_logstash_drains(monkeypatch):
    with our_input(queue_capacity=4) as ls:
        sink = make_sink(monkeypatch, ls.url)
        result = {}
        sender = threading.Thread(target=lambda: result.setdefault("rejected", sink.send(events(10))))
        sender.start()
        assert ls.wait_for(lambda s: s.blocked_workers == 1)
        assert len(ls.events) == 4 and "rejected" not in result  # still waiting for Logstash
        while sender.is_alive():
            ls.consume()
            sender.join(0.05)
        assert result["rejected"] == [] and len(ls.events) == 10 and ls.statuses == [200]


def test_blocked_worker_makes_logstash_answer_429_and_the_sink_backs_off(monkeypatch):
    with our_input(queue_capacity=2, block_threshold=0.0) as ls:
        first = make_sink(monkeypatch, ls.url)
        second = make_sink(monkeypatch, ls.url, http={"retries": 30})
        a, b = events(3), events(2, vendor="progress_mft")
        results = {}
        ta = threading.Thread(target=lambda: results.setdefault("a", first.send(a)))
        ta.start()
        assert ls.wait_for(lambda s: s.blocked_workers == 1)
        tb = threading.Thread(target=lambda: results.setdefault("b", second.send(b)))
        tb.start()
        assert ls.wait_for(lambda s: 429 in s.statuses)
        while ta.is_alive() or tb.is_alive():
            ls.consume()
            ta.join(0.02)
            tb.join(0.02)
        assert results == {"a": [], "b": []}
        ids = sorted(d["event"]["id"] for d in ls.documents())
        assert ids == sorted(e.id for e in a + b)  # each exactly once


# -- TLS -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"), "logstash-test")


def test_tls_with_a_trusted_ca_bundle(monkeypatch, tls_files):
    with our_input(tls=server_context(*tls_files)) as ls:
        sink = make_sink(monkeypatch, ls.url, http={"ca_bundle": str(tls_files[0])})
        assert sink.send(events(3)) == [] and len(ls.events) == 3


def test_tls_with_an_untrusted_certificate_fails_with_one_clear_line(monkeypatch, tls_files):
    with our_input(tls=server_context(*tls_files)) as ls:
        sink = make_sink(monkeypatch, ls.url)
        with pytest.raises(HttpError, match="TLS failure"):
            sink.send(events(1))
        assert ls.events == []


# -- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "options, key, problem",
    [
        ({"url": "logstash:8080"}, "url", "http:// or https://"),
        ({"url": "https://u:p@logstash:8443/"}, "url", "must not contain credentials"),
        ({"password": None}, "password", "is required when"),
        ({"user": None}, "user", "is required when"),
        ({"batch_bytes": 10}, "batch_bytes", "at least"),
    ],
)
def test_bad_options_name_the_key(monkeypatch, options, key, problem):
    monkeypatch.setenv("LS_PASSWORD", PASSWORD)
    table = {"name": "ls", "type": "logstash", "url": "https://logstash:8443/", "user": "forwarder",
             "password": "env:LS_PASSWORD"}
    table.update(options)
    table = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        parse_config({"sink": [table]})
    assert f'sink "ls".{key}' in str(err.value) and problem in str(err.value)


def test_a_literal_password_is_refused_without_being_echoed():
    table = {"name": "ls", "type": "logstash", "url": "https://logstash:8443/", "user": "u", "password": PASSWORD}
    with pytest.raises(ConfigError) as err:
        parse_config({"sink": [table]})
    assert PASSWORD not in str(err.value)


# -- end to end through the pipeline ---------------------------------------------------------

class PagesSource(Source):
    """Two pages of events; the cursor is the next page number."""

    TYPE = VENDOR = "crusoe"

    def __init__(self, store, work_dir):
        from forwarder.config import SourceConfig
        from forwarder.http import HttpSettings

        super().__init__(SourceConfig("crusoe-test", "crusoe", 60, 0, 60, True, HttpSettings()), store, work_dir)
        self.pages = [events(40)[:20], events(40)[20:]]

    def fetch(self, cursor, start, end):
        for i in range((cursor or {}).get("page", 0), len(self.pages)):
            yield Page([e.raw for e in self.pages[i]], {"page": i + 1})

    def normalize(self, record):
        return next(e for page in self.pages for e in page if e.raw == record)


def test_checkpoint_moves_only_after_logstash_accepted(monkeypatch, state_dir, tmp_path):
    store = SqliteStore(state_dir)
    with our_input() as ls:
        ls.fail_next(50, 503)  # Logstash down for longer than the retries last
        sink = make_sink(monkeypatch, ls.url, http={"retries": 1})
        pipe = Pipeline([sink], store, DeadLetters(state_dir))
        try:
            failed = pipe.run_pass(PagesSource(store, tmp_path), now(), now())
        finally:
            pipe.close()
        assert failed.error and store.get("crusoe-test") is None and ls.events == []
        ls.clear_failures()  # Logstash is back
        sink = make_sink(monkeypatch, ls.url)
        pipe = Pipeline([sink], store, DeadLetters(state_dir))
        try:
            ok = pipe.run_pass(PagesSource(store, tmp_path), now(), now())
        finally:
            pipe.close()
        assert ok.error is None and store.get("crusoe-test") == {"page": 2}
        assert len({d["event"]["id"] for d in ls.documents()}) == 40
    store.close()
