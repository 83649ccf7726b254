"""Progress Automate MFT: the report flow end to end against the strict simulator."""

from __future__ import annotations

import datetime as dt
import logging
import time

import jwt
import pytest
import requests

from forwarder.auth.jwt_assertion import ASSERTION_TYPE, JwtAssertionAuth, load_es256_key
from forwarder.config import SinkConfig, parse_config
from forwarder.deadletter import DeadLetters
from forwarder.errors import AuthError, ConfigError, SinkError
from forwarder.http import HttpSettings
from forwarder.pipeline import Pipeline
from forwarder.secrets import Secret
from forwarder.simulators.base import Faults, Response
from forwarder.simulators.progress_mft import ProgressMftSimulator
from forwarder.sinks.base import Sink
from forwarder.sources.progress_mft import ProgressMftSource
from forwarder.state import SqliteStore

UTC = dt.timezone.utc
START = dt.datetime(2026, 6, 26, 0, 0, tzinfo=UTC)
END = dt.datetime(2026, 6, 26, 3, 0, tzinfo=UTC)
TENANT = "tenant-7f3a"


class CollectSink(Sink):
    """Keeps what it is sent; can fail its first ``fail_sends`` deliveries."""

    TYPE = "collect"

    def __init__(self, fail_sends: int = 0) -> None:
        super().__init__(SinkConfig("collect", "collect", 5000, 0.0, HttpSettings()))
        self.events = []
        self.fail_sends = fail_sends

    def send(self, events):
        if self.fail_sends:
            self.fail_sends -= 1
            raise SinkError("sink collect: target down")
        self.events.extend(events)
        return []


@pytest.fixture
def sim():
    with ProgressMftSimulator(events_per_hour=20) as s:
        yield s


def table(sim, tmp_path, **options):
    kid, pem = sim.new_client(TENANT)
    key_file = tmp_path / f"key-{kid}.pem"
    key_file.write_text(pem)
    return {
        "name": "mft",
        "type": "progress_mft",
        "base_url": sim.url,
        "tenant_id": TENANT,
        "key_id": kid,
        "private_key": f"file:{key_file}",
        "poll_interval": 0.01,
        "http": {"backoff_base": 0.01, "backoff_max": 0.05, "retries": 2},
        **options,
    }


def make_source(sim, tmp_path, store, **options):
    cfg = parse_config({"source": [table(sim, tmp_path, **options)]}).sources[0]
    return ProgressMftSource(cfg, store, tmp_path / "work")


def run(source, sink, store, tmp_path, start=START, end=END):
    pipe = Pipeline([sink], store, DeadLetters(tmp_path / "dl"))
    try:
        return pipe.run_pass(source, start, end)
    finally:
        pipe.close()


def expected_ids(sim, start=START, end=END, filters=None):
    return sorted(r["id"] for r in sim.rows(TENANT, start, end, filters))


def in_flight(store):
    return {k: v for k, v in store.scratch_get("mft").items() if k.startswith("report:")}


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("status_style", ["string", "number"])
def test_whole_flow_delivers_every_row_once_and_cleans_up(sim, tmp_path, state_dir, fmt, status_style):
    sim.status_style = status_style
    sim.polls_until_ready = 2
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store, report_format=fmt, page_size=7)
    sink = CollectSink()
    result = run(source, sink, store, tmp_path)
    source.close()

    assert result.error is None
    assert sorted(e.id for e in sink.events) == expected_ids(sim)
    assert len(sink.events) == 60
    assert result.pages > 3  # 20 rows a window in pages of 7
    assert store.get("mft") == {"until": "2026-06-26T03:00:00Z"}
    assert (sim.created, sim.deleted, sim.reports) == (3, 3, {})
    assert in_flight(store) == {}
    assert sim.tokens.issued == 1  # one token reused for every call
    polls = [s for m, p, s in sim.log if m == "GET" and p.startswith("/v1/reports/audit-logs/")]
    assert len(polls) == 3 * 3  # two in progress, one completed, per window
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]  # no spool file left


def test_csv_and_json_rows_without_ids_get_the_same_composite_ids(tmp_path, state_dir):
    ids = {}
    with ProgressMftSimulator(events_per_hour=30, row_ids=False) as sim:
        for fmt in ("json", "csv"):
            store = SqliteStore(state_dir / fmt)
            source = make_source(sim, tmp_path, store, report_format=fmt)
            sink = CollectSink()
            assert run(source, sink, store, tmp_path).error is None
            ids[fmt] = sorted(e.id for e in sink.events)
            source.close()
    assert ids["json"] == ids["csv"]
    assert len(set(ids["json"])) == 90  # distinct rows keep distinct ids


def test_windows_follow_the_window_option_and_the_checkpoint(sim, tmp_path, state_dir):
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store, window="30m")
    sink = CollectSink()
    assert run(source, sink, store, tmp_path, end=START + dt.timedelta(hours=1)).error is None
    assert sim.created == 2
    # The next pass starts where the checkpoint is, not at START.
    assert run(source, sink, store, tmp_path).error is None
    assert sim.created == 6
    assert sorted(e.id for e in sink.events) == expected_ids(sim)
    source.close()


def test_filters_are_sent_and_applied(sim, tmp_path, state_dir):
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store, actions=["Delete", "Update", "Delete"], outcomes=["Success"], actor_type="User")
    sink = CollectSink()
    assert run(source, sink, store, tmp_path).error is None
    filters = {"actions": ["Delete", "Update"], "outcomes": ["Success"], "actorType": "User"}
    assert sorted(e.id for e in sink.events) == expected_ids(sim, filters=filters)
    assert sink.events and all(e.action.split(".")[1] in ("Delete", "Update") and e.outcome == "success" for e in sink.events)
    source.close()


def test_crash_between_download_and_delete_reuses_the_report(sim, tmp_path, state_dir):
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    failed = run(source, CollectSink(fail_sends=1), store, tmp_path)
    source.close()
    assert "target down" in failed.error
    assert store.get("mft") is None
    assert list(sim.reports) == [r["id"] for r in in_flight(store).values()]  # recorded, not orphaned

    store.close()
    store = SqliteStore(state_dir)  # a new process
    source = make_source(sim, tmp_path, store)
    sink = CollectSink()
    result = run(source, sink, store, tmp_path)
    source.close()
    assert result.error is None
    assert sorted(e.id for e in sink.events) == expected_ids(sim)
    assert (sim.created, sim.deleted, sim.reports) == (3, 3, {})  # the first window's report was reused
    assert in_flight(store) == {}


def test_crash_after_checkpoint_before_delete_deletes_the_leftover(sim, tmp_path, state_dir):
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    pages = source.fetch(None, START, END)
    for page in pages:
        if page.cursor:
            store.commit("mft", page.cursor)  # delivered and committed; the process dies before the hook
            break
    pages.close()
    source.close()
    assert len(sim.reports) == 1 and len(in_flight(store)) == 1

    source = make_source(sim, tmp_path, store)
    leftover = source._spool_path(next(iter(in_flight(store).values())))
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_text("[")  # what a hard crash mid-download leaves behind
    sink = CollectSink()
    result = run(source, sink, store, tmp_path)
    source.close()
    assert result.error is None
    assert sorted(e.id for e in sink.events) == expected_ids(sim, start=START + dt.timedelta(hours=1))
    assert (sim.created, sim.deleted, sim.reports) == (3, 3, {})
    assert in_flight(store) == {} and not leftover.exists()


def test_a_recorded_report_the_tenant_no_longer_has_is_forgotten(sim, tmp_path, state_dir):
    store = SqliteStore(state_dir)
    store.scratch_put("mft", "report:gone", {"id": "gone", "start": "2026-06-26T00:00:00Z", "end": "2026-06-26T01:00:00Z", "request": "x"})
    source = make_source(sim, tmp_path, store)
    assert run(source, CollectSink(), store, tmp_path).error is None
    source.close()
    assert in_flight(store) == {} and sim.created == 3


class UnlistedSimulator(ProgressMftSimulator):
    """Its report list shows nothing (whether the real list is paged is undocumented)."""

    def _list(self, request):
        return Response.json({"items": []})


def test_a_recorded_report_missing_from_the_list_is_still_deleted(tmp_path, state_dir):
    with UnlistedSimulator(events_per_hour=20) as sim:
        store = SqliteStore(state_dir)
        source = make_source(sim, tmp_path, store)
        run(source, CollectSink(fail_sends=1), store, tmp_path)
        source.close()
        left = set(sim.reports)
        assert left and left == {r["id"] for r in in_flight(store).values()}
        source = make_source(sim, tmp_path, store)
        assert run(source, CollectSink(), store, tmp_path).error is None
        source.close()
        assert sim.reports == {} and in_flight(store) == {}  # nothing orphaned on the tenant
        deletes = {p.rsplit("/", 1)[1] for m, p, s in sim.log if m == "DELETE"}
        assert left <= deletes


def test_changed_filters_do_not_reuse_an_old_report(sim, tmp_path, state_dir):
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    run(source, CollectSink(fail_sends=1), store, tmp_path)
    source.close()
    left = sim.created  # the pipeline may have read ahead into the next window
    assert left >= 1 and len(sim.reports) == left
    source = make_source(sim, tmp_path, store, outcomes=["Error"])
    assert run(source, CollectSink(), store, tmp_path).error is None
    source.close()
    assert (sim.created, sim.deleted, sim.reports) == (left + 3, left + 3, {})


def test_report_that_never_completes_fails_after_max_wait_and_leaves_nothing(sim, tmp_path, state_dir):
    sim.polls_until_ready = None
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store, max_wait=0.1)
    sink = CollectSink()
    result = run(source, sink, store, tmp_path)
    source.close()
    assert "still in progress after 0.1 s (max_wait)" in result.error
    assert "\n" not in result.error
    assert sink.events == [] and store.get("mft") is None
    assert sim.reports == {} and in_flight(store) == {}


def test_unexpected_status_is_a_clear_error_and_leaves_nothing(sim, tmp_path, state_dir):
    sim.fail_reports = True
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    result = run(source, CollectSink(), store, tmp_path)
    source.close()
    assert "unexpected status 'Failed'" in result.error
    assert sim.reports == {} and in_flight(store) == {}


def test_download_falls_back_to_the_bearer_token_on_403(sim, tmp_path, state_dir):
    sim.download_requires_auth = True
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    sink = CollectSink()
    assert run(source, sink, store, tmp_path).error is None
    source.close()
    files = [s for m, p, s in sim.log if p.startswith("/files/")]
    assert files == [403, 200] * 3
    assert len(sink.events) == 60


def test_broken_download_is_retried_with_a_fresh_url(sim, tmp_path, state_dir):
    sim.broken_downloads = 1
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    sink = CollectSink()
    assert run(source, sink, store, tmp_path).error is None
    source.close()
    assert sim.downloads == 4 and sorted(e.id for e in sink.events) == expected_ids(sim)


def test_expired_download_links_fail_with_one_line_and_keep_the_report_on_record(sim, tmp_path, state_dir):
    sim.url_ttl = 0
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    result = run(source, CollectSink(), store, tmp_path)
    source.close()
    assert "was refused (HTTP 403" in result.error and "next pass tries again" in result.error
    assert "/files/" not in result.error and "\n" not in result.error  # no download link in the line
    assert list(sim.reports) == [r["id"] for r in in_flight(store).values()]


def test_expired_assertion_is_refused_and_nothing_leaks(sim, tmp_path, state_dir, caplog):
    caplog.set_level(logging.DEBUG)
    store = SqliteStore(state_dir)
    options = table(sim, tmp_path)
    pem = open(options["private_key"].removeprefix("file:")).read()
    source = ProgressMftSource(parse_config({"source": [options]}).sources[0], store, tmp_path / "work")
    source.auth.clock = lambda: time.time() - 3600
    result = run(source, CollectSink(), store, tmp_path)
    source.close()
    assert "returned HTTP 401" in result.error and "client_assertion has expired" in result.error
    assert sim.created == 0 and sim.tokens.issued == 0
    text = result.error + caplog.text
    assert "PRIVATE KEY" not in text and pem[40:80] not in text


def test_key_and_token_reach_no_log_error_or_state_file(sim, tmp_path, state_dir, caplog):
    caplog.set_level(logging.DEBUG)
    store = SqliteStore(state_dir)
    source = make_source(sim, tmp_path, store)
    result = run(source, CollectSink(fail_sends=1), store, tmp_path)
    token = source.auth.token().reveal()
    source.close()
    store.close()
    assert result.error and in_flight(SqliteStore(state_dir))  # there is state to search
    pem = next(tmp_path.glob("key-*.pem")).read_text()
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("key-"))
    text = caplog.text + result.error
    for secret in (pem[40:80], token):
        assert secret not in text and secret.encode() not in written


def assertion_auth(sim, tenant=TENANT, **kw):
    kid, pem = sim.new_client(tenant)
    key = load_es256_key(Secret(pem), None, "private_key")
    params = {"token_url": sim.token_url, "client_id": tenant, "key_id": kid, "private_key": key,
              "settings": HttpSettings(retries=0), **kw}
    return JwtAssertionAuth(**params)


def post_assertion(sim, assertion):
    return requests.post(sim.token_url, json={"grant_type": "client_credentials",
                                              "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}, timeout=5)


def test_simulator_verifies_signature_kid_aud_lifetime_and_replay(sim):
    auth = assertion_auth(sim)
    good = auth.assertion()
    assert post_assertion(sim, good).status_code == 200
    replay = post_assertion(sim, good)
    assert (replay.status_code, replay.json()["error_description"]) == (401, "jti has been used before")

    other = assertion_auth(sim)
    forged = auth.assertion().rsplit(".", 1)[0] + "." + other.assertion().rsplit(".", 1)[1]
    assert "signature" in post_assertion(sim, forged).json()["error_description"]

    auth.key_id = "not-registered"
    assert post_assertion(sim, auth.assertion()).json()["error_description"] == "unknown kid"

    wrong_aud = assertion_auth(sim, token_url="https://api.eu.mft.progress.com/v1/oauth/token")
    assert post_assertion(sim, wrong_aud.assertion()).json()["error_description"].startswith("aud must be")

    wrong_iss = assertion_auth(sim, client_id="someone-else")
    wrong_iss.key_id = assertion_auth(sim).key_id  # a key of TENANT, claims of another tenant
    assert post_assertion(sim, wrong_iss.assertion()).status_code == 401

    too_long = assertion_auth(sim, lifetime=3600)
    assert post_assertion(sim, too_long.assertion()).json()["error_description"] == "exp is more than 10 minutes ahead"

    early = assertion_auth(sim)
    early.clock = lambda: time.time() + 3600  # nbf an hour ahead
    assert "not valid yet" in post_assertion(sim, early.assertion()).json()["error_description"]


def test_assertion_header_and_claims(sim):
    auth = assertion_auth(sim, lifetime=90)
    auth.clock = lambda: 1782432000.7
    one, two = auth.assertion(), auth.assertion()
    assert jwt.get_unverified_header(one) == {"alg": "ES256", "typ": "JWT", "kid": auth.key_id}
    claims = jwt.decode(one, options={"verify_signature": False})
    assert claims["iss"] == claims["sub"] == TENANT
    assert claims["aud"] == sim.url + "/v1/oauth/token"
    assert claims["iat"] == claims["nbf"] == 1782432000 and claims["exp"] == 1782432090
    assert claims["jti"] != jwt.decode(two, options={"verify_signature": False})["jti"]


def test_aud_is_the_regional_token_url(sim, tmp_path, state_dir):
    options = {k: v for k, v in table(sim, tmp_path).items() if k != "base_url"}
    source = ProgressMftSource(parse_config({"source": [{**options, "region": "eu"}]}).sources[0], SqliteStore(state_dir), tmp_path)
    assert source.auth.token_url == "https://api.eu.mft.progress.com/v1/oauth/token" and source.region == "eu"
    source.close()


def test_token_is_renewed_shortly_before_it_expires():
    with ProgressMftSimulator(faults=Faults(token_ttl=100)) as sim:
        auth = assertion_auth(sim)
        clock = [1000.0]
        auth._now = lambda: clock[0]  # the renewal clock (monotonic)
        first = auth.token()
        clock[0] += 74  # renewal is due at 100 s - min(30 s, 25 %) = 75 s
        assert auth.token() is first and sim.tokens.issued == 1
        clock[0] += 2
        assert auth.token() != first and sim.tokens.issued == 2  # renewed before any 401


def test_token_is_reused_and_refreshed_after_a_401(sim):
    auth = assertion_auth(sim)
    first = auth.token()
    assert auth.token() is first and sim.tokens.issued == 1
    sim.tokens.expire_all()
    stale = requests.get(sim.url + "/v1/reports/audit-logs", auth=auth, timeout=5)
    assert stale.status_code == 401  # the cached token is still used; HttpClient would call refresh()
    auth.refresh()
    assert requests.get(sim.url + "/v1/reports/audit-logs", auth=auth, timeout=5).status_code == 200
    assert sim.tokens.issued == 2


def test_check_refreshes_an_expired_token_and_creates_nothing(sim, tmp_path, state_dir):
    source = make_source(sim, tmp_path, SqliteStore(state_dir))
    assert TENANT in source.check()
    sim.tokens.expire_all()
    assert "0 reports" in source.check()
    source.close()
    assert sim.tokens.issued == 2 and sim.created == 0


def test_form_encoded_token_requests_follow_the_switch(tmp_path, state_dir):
    with ProgressMftSimulator(token_body="form", events_per_hour=5) as sim:
        store = SqliteStore(state_dir)
        source = make_source(sim, tmp_path, store)
        with pytest.raises(AuthError, match='set token_body = "form"'):
            source.check()
        source.close()
        source = make_source(sim, tmp_path, store, token_body="form")
        assert run(source, CollectSink(), store, tmp_path).error is None
        source.close()


def test_simulator_rejects_unknown_enum_values(sim):
    auth = assertion_auth(sim)
    body = {"type": 1, "start": "2026-06-26T00:00:00Z", "end": "2026-06-26T01:00:00Z", "actor": None,
            "actorType": "Robot", "actions": ["Get", "Purge"], "resources": ["Task"], "outcomes": ["success"], "sourceIp": "nope"}
    resp = requests.post(sim.url + "/v1/reports/audit-logs", json=body, auth=auth, timeout=5)
    assert resp.status_code == 400
    assert set(resp.json()["errors"]) == {"actorType", "actions[1]", "outcomes[0]", "sourceIp"}
    assert sim.created == 0


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ({"actions": ["Purge"]}, "actions", "'Purge' is not one of"),
        ({"actor_type": "Robot"}, "actor_type", "is not one of"),
        ({"source_ip": "10.0.0"}, "source_ip", "IPv4 or IPv6"),
        ({"actor": "x" * 321}, "actor", "at most 320"),
        ({"region": "us"}, "region", "not both"),
        ({"base_url": "http://api.example.com"}, "base_url", "https://"),
    ],
)
def test_config_errors_name_the_key(sim, tmp_path, change, key, problem):
    with pytest.raises(ConfigError) as err:
        parse_config({"source": [table(sim, tmp_path, **change)]})
    assert f'source "mft".{key}' in str(err.value) and problem in str(err.value)


def test_a_bad_private_key_is_a_config_error_without_the_key(sim, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as err:
        parse_config({"source": [table(sim, tmp_path, private_key=f"file:{bad}")]})
    assert "private_key" in str(err.value) and "bm90" not in str(err.value)


def test_demo_source_runs_without_credentials(tmp_path, monkeypatch):
    from forwarder.runner import run_once

    with ProgressMftSimulator() as sim:
        source, env = sim.demo_source(60)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        config = parse_config({"state": {"dir": str(tmp_path / "state")}, "source": [source],
                               "sink": [{"name": "f", "type": "file", "path": str(tmp_path / "out.ndjson")}]})
        [result] = run_once(config)
        assert result.error is None and result.events > 30
        assert sim.reports == {}
