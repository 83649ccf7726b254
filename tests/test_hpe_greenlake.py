"""HPE GreenLake source end to end against the simulator: cap bisection, commits, tokens, quotas, details, export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from forwarder import jsoncodec, runner
from forwarder.cli import main as cli_main
from forwarder.config import parse_config
from forwarder.deadletter import DeadLetters
from forwarder.errors import ConfigError, SinkError
from forwarder.export import neutralize
from forwarder.pipeline import Pipeline
from forwarder.simulators.hpe_greenlake import SERVICES, Client, GreenLakeSimulator, _hpe_error
from forwarder.sinks.file import FileSink
from forwarder.sources.hpe_greenlake import GreenLakeSource
from forwarder.state import SqliteStore
from tests.fakeclock import FakeClock

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 6, 1, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)
FAST_HTTP = {"backoff_base": 0.01, "backoff_max": 0.05, "retries": 6}
UNLIMITED = {"rate_limit": 1_000_000.0, "rate_limit_overall": 1_000_000.0}
BLOG_COLUMNS = [
    "id", "type", "Username", "Workspace ID", "Workspace Name", "Category", "Application ID",
    "Application Name", "Description", "Generation", "Created At", "Updated At", "IP Address", "Has Details",
]


class Env:
    """Builds configs for a simulator client, with its secret in the environment."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.monkeypatch = monkeypatch

    def table(self, sim: GreenLakeSimulator, client: Client, name: str = "gl", **options: Any) -> dict[str, Any]:
        var = "GL_SECRET_" + client.id.replace("-", "_")
        self.monkeypatch.setenv(var, client.secret)
        return {
            "name": name, "type": "hpe_greenlake", "base_url": sim.url, "workspace_id": client.workspace.id,
            "client_id": client.id, "client_secret": f"env:{var}", "http": dict(FAST_HTTP), **options,
        }

    def config(self, *tables: dict[str, Any], out: str = "events.ndjson", batch_events: int = 5000):
        return parse_config({
            "state": {"dir": str(self.tmp / "state")},
            "source": list(tables),
            "sink": [{"name": "file", "type": "file", "path": str(self.tmp / out), "batch_events": batch_events}],
        })

    def delivered(self, out: str = "events.ndjson") -> list[dict[str, Any]]:
        """The raw vendor records the file sink received, in order (from event.original)."""
        path = self.tmp / out
        if not path.exists():
            return []
        return [jsoncodec.loads(jsoncodec.loads(line)["event"]["original"]) for line in path.read_bytes().splitlines()]

    def documents(self, out: str = "events.ndjson") -> list[dict[str, Any]]:
        return [jsoncodec.loads(line) for line in (self.tmp / out).read_bytes().splitlines()]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    return Env(tmp_path, monkeypatch)


def quiet_sim(**kw: Any) -> GreenLakeSimulator:
    """A simulator with no background records and no rate limits unless asked."""
    return GreenLakeSimulator(**{"per_hour": 0, "rate_limit": None, "rate_overall": None, **kw})


def new_client(sim: GreenLakeSimulator, kind: str = "STANDALONE") -> Client:
    ws = next(w for w in sim.workspaces.values() if w.type == kind)
    return sim.add_client(ws.id)


class RecordingStore(SqliteStore):
    """A checkpoint store that remembers every commit."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.commits: list[dict[str, Any]] = []

    def commit(self, name: str, cursor: dict[str, Any], ledger: Any = ()) -> None:
        super().commit(name, cursor, ledger)
        self.commits.append(cursor)


def direct(env: Env, table: dict[str, Any], store: SqliteStore, clock: FakeClock | None = None, batch_events: int = 5000):
    """A source and a pipeline built by hand (to reach the store, or to give the client a fake clock)."""
    config = env.config(table, batch_events=batch_events)
    source = GreenLakeSource(config.sources[0], store, config.state_dir)
    if clock is not None:
        source.http.sleep = clock.sleep
        for limiter in (source.http.limiter.per_client, source.http.limiter.overall):
            limiter.clock, limiter.sleep = clock, clock.sleep
            limiter.updated, limiter.tokens, limiter.blocked_until = clock(), limiter.capacity, 0.0
    pipeline = Pipeline([FileSink(config.sinks[0])], store, DeadLetters(config.state_dir))
    return source, pipeline


def run_direct(env: Env, table: dict[str, Any], clock: FakeClock) -> Any:
    """One pass over [T0, T0 + 1h) of a hand-built source on ``clock``; everything closed afterwards."""
    store = SqliteStore(env.tmp / "state")
    source, pipeline = direct(env, table, store, clock)
    try:
        return pipeline.run_pass(source, T0, T0 + HOUR)
    finally:
        pipeline.close()
        source.close()
        store.close()


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


# -- the 10,000 cap ---------------------------------------------------------------------
def test_window_over_25000_records_is_bisected_and_delivered_exactly_once(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        ws = client.workspace.id
        sim.add_records(ws, T0, T0 + HOUR, 26_000)
        sim.add_records(ws, T0 + HOUR, T0 + 2 * HOUR, 700)
        truth = sim.records(ws, "v1", T0, T0 + 2 * HOUR)
        assert len(truth) == 26_700
        store = RecordingStore(env.tmp / "state")
        source, pipeline = direct(env, env.table(sim, client, window="2h", **UNLIMITED), store)
        try:
            result = pipeline.run_pass(source, T0, T0 + 2 * HOUR)
        finally:
            pipeline.close()
            source.close()
        assert result.error is None
        got = ids(env.delivered())
        assert len(got) == len(set(got)) == 26_700
        assert set(got) == set(ids(truth))
        # Committed part by part, in time order, ending at the window's end; every part fit under the cap.
        untils = [c["until"] for c in store.commits]
        assert len(untils) >= 4 and untils == sorted(untils) and untils[-1] == "2025-06-01T02:00:00Z"
        capped = [c for c in sim.calls if c.status == 200]
        assert len(capped) < 40  # bisection, not a crawl
        store.close()


def test_a_split_window_is_in_the_ledger_as_its_parts_with_the_vendor_total_matching(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 10_500)
        store = SqliteStore(env.tmp / "state", ledger_retention=3650 * 86400.0)  # T0 is older than the default 400 days
        source, pipeline = direct(env, env.table(sim, client, window="1h", **UNLIMITED), store)
        try:
            assert pipeline.run_pass(source, T0, T0 + HOUR).error is None
        finally:
            pipeline.close()
            source.close()
        entries = store.ledger("gl")
        store.close()
    assert len(entries) >= 2  # the hour held more than the cap: it was read (and recorded) in parts
    assert entries[0].start == T0 and entries[-1].end == T0 + HOUR
    assert all(a.end == b.start for a, b in zip(entries, entries[1:]))
    assert all(e.vendor_count == e.read == e.delivered["file"] and e.read < 10_000 for e in entries)
    assert sum(e.read for e in entries) == 10_500


def test_v2_service_offer_lists_are_split_and_bisected_exactly_once(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        ws = client.workspace.id
        for service in SERVICES:
            sim.add_records(ws, T0, T0 + HOUR, 2_000, service=service)
        sim.add_records(ws, T0, T0 + HOUR, 500, service=SERVICES[0])
        wanted = [s.id for s in SERVICES] + ["11111111-2222-3333-4444-555555555555"]  # 7 ids: two queries
        table = env.table(sim, client, api_version="v2beta1", filters={"serviceOffer/id": wanted}, **UNLIMITED)
        results = runner.backfill(env.config(table), "gl", T0, T0 + HOUR)
        assert results.error is None
        got = ids(env.delivered())
        truth = [r for r in sim.records(ws, "v2beta1", T0, T0 + HOUR, "serviceOffer/id in ('" + SERVICES[1].id + "')")]
        assert len(truth) == 2_000
        assert len(got) == len(set(got)) == 6 * 2_000 + 500
        filters = [c for c in sim.calls if c.path.endswith("/logs")]
        assert filters  # every request was accepted by the strict parser (no 400s)
        assert all(c.status == 200 for c in sim.calls)


def test_one_second_over_the_cap_stops_loudly_without_skipping(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        ws = client.workspace.id
        crowded = T0 + dt.timedelta(minutes=20, seconds=7)
        sim.add_records(ws, T0, crowded, 300)
        sim.add_records(ws, crowded, crowded + dt.timedelta(seconds=1), 10_050)
        sim.add_records(ws, crowded + dt.timedelta(seconds=1), T0 + HOUR, 300)
        config = env.config(env.table(sim, client, window="1h", **UNLIMITED))
        result = runner.backfill(config, "gl", T0, T0 + HOUR)
        assert result.error is not None
        assert "within one second" in result.error and "2025-06-01T00:20:07Z" in result.error
        assert "nothing skipped" in result.error
        # (read the store: the pass reports its error before the sink has acknowledged every page)
        store = SqliteStore(env.tmp / "state")
        assert store.get(runner.backfill_key("gl", T0, T0 + HOUR)) == {"until": "2025-06-01T00:20:07Z"}
        store.close()
        assert set(ids(env.delivered())) == set(ids(sim.records(ws, "v1", T0, crowded)))


def test_failed_sink_keeps_the_checkpoint_at_a_part_boundary_and_the_rerun_loses_nothing(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        ws = client.workspace.id
        sim.add_records(ws, T0, T0 + HOUR, 12_000)
        truth = set(ids(sim.records(ws, "v1", T0, T0 + HOUR)))
        table = env.table(sim, client, page_size=1000, **UNLIMITED)
        store = RecordingStore(env.tmp / "state")
        source, pipeline = direct(env, table, store, batch_events=1000)  # one page per send
        sink = pipeline.workers[0].sink
        original, sent = sink.send, []

        def flaky(events):
            if len(sent) + len(events) > 7_000:
                raise SinkError("disk full")
            sent.extend(events)
            return original(events)

        sink.send = flaky
        first = pipeline.run_pass(source, T0, T0 + HOUR)
        pipeline.close()
        source.close()
        assert first.error is not None and "disk full" in first.error
        assert first.cursor is not None and "2025-06-01T00:00:00Z" < first.cursor["until"] < "2025-06-01T01:00:00Z"
        source, pipeline = direct(env, table, store)  # a new, healthy sink
        second = pipeline.run_pass(source, T0, T0 + HOUR)
        pipeline.close()
        source.close()
        assert second.error is None and second.cursor == {"until": "2025-06-01T01:00:00Z"}
        assert set(ids(env.delivered())) == truth
        store.close()


# -- tokens, 429s and quotas -----------------------------------------------------------------
class ExpiringSimulator(GreenLakeSimulator):
    """Expires every token after the third list request."""

    def _logs(self, request, client, version):
        resp = super()._logs(request, client, version)
        self.lists = getattr(self, "lists", 0) + 1
        if self.lists == 3:
            self.tokens.expire_all()
        return resp


def test_token_expiring_mid_run_is_refreshed_once_and_nothing_is_lost(env: Env) -> None:
    with ExpiringSimulator(per_hour=0, rate_limit=None, rate_overall=None) as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 3_000)
        result = runner.backfill(env.config(env.table(sim, client, page_size=500, **UNLIMITED)), "gl", T0, T0 + HOUR)
        assert result.error is None
        assert [c.status for c in sim.calls].count(401) == 1
        assert sim.tokens.issued == 2
        got = ids(env.delivered())
        assert len(got) == len(set(got)) == 3_000


def test_quota_is_never_exceeded_with_details_enrichment(env: Env) -> None:
    clock = FakeClock(100_000.25)  # shared by the client's limiters and the simulator
    with quiet_sim(rate_limit=100, rate_overall=300, clock=clock) as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 400)
        truth = sim.records(client.workspace.id, "v1", T0, T0 + HOUR)
        with_details = [r for r in truth if r["hasDetails"]]
        assert len(with_details) > 120
        began = clock()
        result = run_direct(env, env.table(sim, client, page_size=100, details=True), clock)
        assert result.error is None
        calls = [c for c in sim.calls if c.client == client.id]
        assert len(calls) == 4 + len(with_details)
        assert all(c.status == 200 for c in calls)
        times = [c.time for c in calls]
        assert max(sum(1 for u in times if t <= u < t + 60) for t in times) <= 90  # headroom: 90 % of the 100/min
        assert clock() - began >= (len(calls) - 1) * 0.6 - 0.01  # paced, not bursted
        docs = {jsoncodec.loads(d["event"]["original"])["id"]: d for d in env.documents()}
        for record in with_details:
            detail = docs[record["id"]]["hpe_greenlake"]["audit"]["details"]["detail"]
            assert detail["type"] == "audit_details" and detail["body"]
        assert all(c.path.endswith("/detail") for c in calls if "/logs/" in c.path)


def throttled_pass(env: Env, sim: GreenLakeSimulator, clock: FakeClock) -> list[Any]:
    """600 records read 25 a request on ``clock`` (so a 7/min simulator throttles); every one delivered once.

    Returns the client's calls as the simulator saw them.
    """
    client = new_client(sim)
    sim.add_records(client.workspace.id, T0, T0 + HOUR, 600)
    result = run_direct(env, env.table(sim, client, page_size=25), clock)
    assert result.error is None
    got = ids(env.delivered())
    assert len(got) == len(set(got)) == 600
    return [c for c in sim.calls if c.client == client.id]


def test_429_storm_waits_for_the_reset_and_delivers_everything(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(100_000.25)  # shared by the client's limiters and the simulator
    with quiet_sim(rate_limit=7, rate_overall=300, clock=clock) as sim:
        original = sim._count

        def no_headers_until_throttled(client_id):
            allowed, headers = original(client_id)
            return allowed, headers if not allowed else {}  # only the 429s say when the window resets

        monkeypatch.setattr(sim, "_count", no_headers_until_throttled)
        calls = throttled_pass(env, sim, clock)
        throttled = [i for i, c in enumerate(calls) if c.status == 429]
        assert len(throttled) >= 3  # a storm indeed
        for i in throttled:  # after a 429 the client waits for the next minute window
            assert i + 1 == len(calls) or int(calls[i + 1].time // 60) > int(calls[i].time // 60)
        per_minute: dict[int, list[int]] = {}
        for c in calls:
            per_minute.setdefault(int(c.time // 60), []).append(c.status)
        assert all(statuses.count(429) <= 1 and statuses.count(200) <= 7 for statuses in per_minute.values())


def test_exhausted_ratelimit_headers_pause_the_client_before_any_429(env: Env) -> None:
    clock = FakeClock(100_000.25)  # shared by the client's limiters and the simulator
    with quiet_sim(rate_limit=7, rate_overall=300, clock=clock) as sim:  # far below the configured 100/min
        calls = throttled_pass(env, sim, clock)
        assert len(calls) >= 24 and all(c.status == 200 for c in calls)  # ratelimit-remaining: 0 was obeyed
        assert len({int(c.time // 60) for c in calls}) >= 4  # so the reads spread over several minute windows


def test_random_429_503_and_truncated_bodies_still_deliver_exactly_once(env: Env) -> None:
    from forwarder.simulators.base import Faults

    faults = Faults(throttle_rate=0.15, error_rate=0.1, truncate_rate=0.1, retry_after=0.01, seed=5)
    with quiet_sim(faults=faults) as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 2_500)
        table = env.table(sim, client, page_size=200, **UNLIMITED)
        table["http"]["retries"] = 12
        result = runner.backfill(env.config(table), "gl", T0, T0 + HOUR)
        assert result.error is None
        got = ids(env.delivered())
        assert len(got) == len(set(got)) == 2_500
        assert {429, 503} <= {status for _, _, status in sim.log}


# -- filters on the wire, details, check ---------------------------------------------------------
def test_quoted_filter_values_reach_the_api_intact(env: Env) -> None:
    with quiet_sim() as sim:
        ws = sim.add_workspace("O'Brien Labs", "STANDALONE")
        client = sim.add_client(ws.id)
        sim.add_records(ws.id, T0, T0 + HOUR, 300)
        other = new_client(sim)
        sim.add_records(other.workspace.id, T0, T0 + HOUR, 50)
        table = env.table(sim, client, api_version="v2beta1", filters={"workspace/name": "O'Brien Labs", "category": ["User Activity", "User Management"]}, **UNLIMITED)
        assert runner.backfill(env.config(table), "gl", T0, T0 + HOUR).error is None
        truth = sim.records(ws.id, "v2beta1", T0, T0 + HOUR, "category in ('User Activity', 'User Management')")
        assert truth and sorted(ids(env.delivered())) == sorted(ids(truth))


def test_v2_details_use_the_plural_endpoint(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 200, service=SERVICES[1])
        table = env.table(sim, client, api_version="v2beta1", details=True, filters={"serviceOffer/id": SERVICES[1].id}, **UNLIMITED)
        assert runner.backfill(env.config(table), "gl", T0, T0 + HOUR).error is None
        docs = env.documents()
        enriched = [d for d in docs if jsoncodec.loads(d["event"]["original"])["hasDetails"]]
        assert enriched and all(d["hpe_greenlake"]["audit"]["details"]["detail"]["type"] == "/audit-log/log/details" for d in enriched)
        assert all("_forwarder_detail" not in d["event"]["original"] for d in docs)  # raw stays the vendor record
        assert all(c.path.endswith("/details") for c in sim.calls if "/logs/" in c.path)


def test_select_sends_the_projection_and_events_still_build(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + dt.timedelta(seconds=30), 150)
        table = env.table(sim, client, api_version="v2beta1", select=["username", "category"], window="2500ms", **UNLIMITED)
        result = runner.backfill(env.config(table), "gl", T0, T0 + dt.timedelta(seconds=30))
        assert result.error is None
        truth = sim.records(client.workspace.id, "v2beta1", T0, T0 + dt.timedelta(seconds=30))
        docs = env.documents()
        assert len(docs) == len(truth) > 50
        assert sorted(jsoncodec.loads(d["event"]["original"])["id"] for d in docs) == sorted(ids(truth))
        for doc in docs:
            raw = jsoncodec.loads(doc["event"]["original"])
            assert set(raw) == {"id", "type", "username", "category", "createdAt"}
            assert doc["user"]["name"] == raw["username"] and "source" not in doc


def test_check_reads_one_record_and_commits_nothing(env: Env) -> None:
    with GreenLakeSimulator(rate_limit=None, rate_overall=None) as sim:
        client = new_client(sim)
        config = env.config(env.table(sim, client))
        [(what, ok, detail)] = [r for r in runner.check(config) if r[0].startswith("source")]
        assert ok and "token ok" in detail and "records in the last hour" in detail
        assert len([c for c in sim.calls if c.path.endswith("/logs")]) == 1
        assert not (env.tmp / "state" / "state.db").exists() or SqliteStore(env.tmp / "state").get("gl") is None


def test_bad_credentials_fail_the_pass_with_one_line_and_no_secret(env: Env) -> None:
    with quiet_sim() as sim:
        client = new_client(sim)
        table = env.table(sim, client)
        env.monkeypatch.setenv(table["client_secret"][4:], "wrong-secret-value")
        result = runner.backfill(env.config(table), "gl", T0, T0 + HOUR)
        assert result.error is not None and "HTTP 401" in result.error and "invalid_client" in result.error
        assert "wrong-secret-value" not in result.error and "\n" not in result.error


class RefusingSimulator(GreenLakeSimulator):
    """Answers every list request with ``refusal`` (401 or 403) and HPE's error body."""

    refusal = 403

    def _logs(self, request, client, version):
        return _hpe_error(self.refusal, "HPE_GL_ERROR_REFUSED", "not for you")


@pytest.mark.parametrize("status, words", [(403, "ccs.audit-trail.view"), (401, "freshly issued token was refused")])
def test_api_refusal_is_one_line_with_hpe_reason_and_what_to_check(env: Env, status: int, words: str) -> None:
    with RefusingSimulator(per_hour=0, rate_limit=None, rate_overall=None) as sim:
        sim.refusal = status
        client = new_client(sim)
        result = runner.backfill(env.config(env.table(sim, client)), "gl", T0, T0 + HOUR)
        assert result.error is not None and f"HTTP {status}: HPE_GL_ERROR_REFUSED: not for you (debugId " in result.error
        assert words in result.error and "\n" not in result.error
        assert [c.status for c in sim.calls].count(status) == (2 if status == 401 else 1)  # a 401 gets one new token


def test_demo_source_reads_exactly_the_requested_events(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    with GreenLakeSimulator() as sim:
        table, secrets = sim.demo_source(1234)
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)
        [result] = runner.run_once(env.config(table))
        assert result.error is None and result.events == 1234


# -- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, key, words",
    [
        ({"workspace_id": None}, "workspace_id", "is required with token_url"),
        ({"token_url": "ftp://x"}, "token_url", "must be 'workspace', 'sso' or a token URL: must be an https:// URL"),
        ({"filters": {"username": "a"}}, "filters.username", "unknown filter field for api_version v1"),
        ({"api_version": "v2beta1", "filters": {"serviceOffer/id": {"contains": "x"}}}, "filters.serviceOffer/id.contains", "not supported"),
        ({"select": ["username"]}, "select", "cannot be selected in v1"),
        ({"api_version": "v1beta1"}, "api_version", "not one of v1, v2beta1"),
        ({"page_size": 2001}, "page_size", "at most 2000"),
    ],
)
def test_config_errors_name_the_key(env: Env, options: dict[str, Any], key: str, words: str) -> None:
    table = {"name": "gl", "type": "hpe_greenlake", "workspace_id": "ws", "client_id": "c", "client_secret": "env:GL_X"}
    env.monkeypatch.setenv("GL_X", "secret-value")
    table.update({k: v for k, v in options.items() if v is not None})
    if options.get("workspace_id", "") is None:
        del table["workspace_id"]
    with pytest.raises(ConfigError) as info:
        env.config(table)
    assert info.value.key == f'source "gl".{key}'
    assert words in info.value.problem


def test_sources_with_one_client_id_share_its_quota(env: Env) -> None:
    env.monkeypatch.setenv("GL_X", "secret-value")
    base = {"type": "hpe_greenlake", "workspace_id": "ws", "client_secret": "env:GL_X", "base_url": "https://gl.example"}
    tables = [dict(base, name="a", client_id="c1"), dict(base, name="b", client_id="c1", api_version="v2beta1"),
              dict(base, name="c", client_id="c2")]
    a, b, c = (GreenLakeSource(s, SqliteStore(env.tmp / "state"), env.tmp) for s in env.config(*tables).sources)
    assert a.http.limiter.per_client is b.http.limiter.per_client  # one bucket per client id, whatever the source
    assert a.http.limiter.per_client is not c.http.limiter.per_client
    assert a.http.limiter.overall is c.http.limiter.overall  # the API's overall quota is everyone's
    assert a.http.limiter.per_client.per_minute == 90 and a.http.limiter.overall.per_minute == 270  # headroom 0.9


def test_sso_token_url_uses_basic_auth_by_default(env: Env) -> None:
    table = {"name": "gl", "type": "hpe_greenlake", "token_url": "sso", "client_id": "c", "client_secret": "env:GL_X"}
    env.monkeypatch.setenv("GL_X", "secret-value")
    config = env.config(table)
    source = GreenLakeSource(config.sources[0], SqliteStore(env.tmp / "state"), env.tmp)
    assert source.auth.token_url == "https://sso.common.cloud.hpe.com/as/token.oauth2"
    assert source.auth.client_auth == "basic"
    assert source.logs_url == "https://global.api.greenlake.hpe.com/audit-log/v1/logs"


# -- export ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v2beta1"])
def test_export_xlsx_has_the_blog_columns(env: Env, version: str) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    with quiet_sim() as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 120)
        truth = {neutralize(r["id"]): r for r in sim.records(client.workspace.id, version, T0, T0 + HOUR)}
        table = env.table(sim, client, api_version=version, **UNLIMITED)
        config_file = env.tmp / "forwarder.toml"
        config_file.write_text(_toml(table, env.tmp))
        out = env.tmp / "audit.xlsx"
        code = cli_main(["export", "--config", str(config_file), "--source", "gl", "--from", "2025-06-01T00:00:00Z",
                         "--to", "2025-06-01T01:00:00Z", "--format", "xlsx", "--output", str(out)])
        assert code == 0
        rows = list(openpyxl.load_workbook(out, read_only=True).active.iter_rows(values_only=True))
        header = list(rows[0])
        assert set(BLOG_COLUMNS) <= set(header)
        assert len(rows) - 1 == len(truth)
        for row in rows[1:]:
            cell = dict(zip(header, row))
            record = truth[cell["id"]]
            assert cell["Category"] == record["category"] and cell["Description"] == neutralize(record["description"])
            assert cell["Created At"] == record["createdAt"] and cell["Has Details"] == record["hasDetails"]
            assert cell["Workspace ID"] == record["workspace"]["id"]
            if version == "v1":
                assert cell["Username"] == record["user"]["username"] and cell["Generation"] == record["generation"]
                assert cell["Application ID"] == record["application"]["id"]
            else:
                assert cell["Username"] == record["username"] and cell["Application Name"] == record["serviceOffer"]["name"]


def _toml(table: dict[str, Any], tmp: Path) -> str:
    lines = [f'[state]\ndir = "{tmp / "state"}"\n', "[[source]]"]
    lines += [f"{k} = {jsoncodec.dumps_str(v)}" for k, v in table.items() if not isinstance(v, dict)]
    lines += ["[source.http]"] + [f"{k} = {jsoncodec.dumps_str(v)}" for k, v in table["http"].items()]
    lines += ["[[sink]]", 'name = "file"', 'type = "file"', f'path = "{tmp / "unused.ndjson"}"']
    return "\n".join(lines) + "\n"
