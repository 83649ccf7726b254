"""HPE GreenLake when the quota is contended: hintless 429s, headroom, and split windows read once.

Everything runs on a FakeClock shared by the client's limiters and the simulator: no real sleeps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, strategies as st

from forwarder import jsoncodec
from forwarder.errors import ConfigError
from forwarder.simulators.hpe_greenlake import GreenLakeSimulator
from forwarder.sources.hpe_greenlake import GreenLakeSource, _Lead
from forwarder.state import MemoryStore
from forwarder.timeutil import UTC, format_time, parse_time
from tests.fakeclock import FakeClock
from tests.test_hpe_greenlake import HOUR, T0, UNLIMITED, Env, env, ids, new_client, quiet_sim, run_direct  # noqa: F401


def test_429_without_any_hint_waits_a_whole_quota_window_instead_of_failing(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another consumer of the same client id uses 97 of the 100 requests of every minute, and the
    gateway's 429s carry neither Retry-After nor ratelimit-* headers."""
    clock = FakeClock(100_000.25)
    with quiet_sim(rate_limit=100, rate_overall=300, clock=clock) as sim:
        client = new_client(sim)
        original = sim._count

        def contended(client_id: str) -> tuple[bool, dict[str, str]]:
            with sim._lock:
                sim._windows.setdefault((client_id, int(clock() // 60)), 97)  # the other consumer's share
            allowed, _ = original(client_id)
            return allowed, {}

        monkeypatch.setattr(sim, "_count", contended)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 600)
        table = env.table(sim, client, page_size=50)
        table["http"] = {}  # the default retries and backoff (5 retries, 0.5 s doubling)
        result = run_direct(env, table, clock)
        assert result.error is None
        got = ids(env.delivered())
        assert len(got) == len(set(got)) == 600
        calls = [c for c in sim.calls if c.client == client.id]
        throttled = [i for i, c in enumerate(calls) if c.status == 429]
        assert throttled  # contention indeed
        for i in throttled:
            assert i + 1 < len(calls) and calls[i + 1].time - calls[i].time >= 60  # a whole quota window


def test_429_with_ratelimit_reset_waits_for_the_reset(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(100_000.25)
    with quiet_sim(rate_limit=3, rate_overall=300, clock=clock) as sim:
        original = sim._count

        def reset_only_on_429(client_id: str) -> tuple[bool, dict[str, str]]:
            allowed, headers = original(client_id)
            return allowed, {} if allowed else {"ratelimit-reset": headers["ratelimit-reset"]}

        monkeypatch.setattr(sim, "_count", reset_only_on_429)
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 300)
        result = run_direct(env, env.table(sim, client, page_size=50), clock)
        assert result.error is None and len(set(ids(env.delivered()))) == 300
        calls = [c for c in sim.calls if c.client == client.id]
        for i, c in enumerate(calls[:-1]):
            if c.status == 429:  # the next request lands in the next minute window, not earlier
                assert int(calls[i + 1].time // 60) > int(c.time // 60)


def _source(env: Env, sim: GreenLakeSimulator, **options: Any) -> GreenLakeSource:
    config = env.config(env.table(sim, new_client(sim), **options))
    return GreenLakeSource(config.sources[0], MemoryStore(), config.state_dir)


def test_headroom_keeps_the_pace_under_the_documented_limit(env: Env) -> None:
    with quiet_sim() as sim:
        default = _source(env, sim)
        assert (default.http.limiter.per_client.per_minute, default.http.limiter.overall.per_minute) == (90, 270)
        full = _source(env, sim, headroom=1.0)
        assert full.http.limiter.per_client.per_minute == 100
        for value in (0.0, 1.5):
            with pytest.raises(ConfigError, match="headroom"):
                env.config(env.table(sim, new_client(sim), headroom=value))


class CountingSimulator(GreenLakeSimulator):
    """Counts the records it serves (every list answer's items)."""

    served = 0

    def _logs(self, request, client, version):
        resp = super()._logs(request, client, version)
        if resp.status == 200:
            self.served += len(jsoncodec.loads(resp.body)["items"])
        return resp


@pytest.mark.parametrize("version", ["v1", "v2beta1"])
def test_a_split_window_does_not_read_its_first_pages_again(env: Env, version: str) -> None:
    with CountingSimulator(per_hour=0, rate_limit=None, rate_overall=None) as sim:
        client = new_client(sim)
        sim.add_records(client.workspace.id, T0, T0 + HOUR, 26_000)
        truth = ids(sim.records(client.workspace.id, version, T0, T0 + HOUR))
        assert len(truth) > 10_000  # (v2beta1 lists platform records only)
        result = run_direct(env, env.table(sim, client, api_version=version, window="1h", **UNLIMITED), FakeClock())
        assert result.error is None
        got = ids(env.delivered())
        assert len(got) == len(set(got)) and set(got) == set(truth)
        # Only records of the same millisecond as the last reused one are read twice (their order may
        # differ between two queries); throwing a probed first page away would re-read 2,000 per split.
        assert len(truth) <= sim.served < len(truth) + 20


@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=60),  # record times in tenths of a second (ties are common)
    st.integers(0, 60), st.integers(1, 39), st.booleans(),
)
def test_split_leads_are_what_each_half_lists_first_whatever_the_order_of_ties(ticks, page, mid_tick, ascending):
    base = dt.datetime(2025, 6, 1, tzinfo=UTC)
    at = [base + dt.timedelta(milliseconds=100 * t) for t in ticks]
    records = sorted(({"id": str(i), "createdAt": format_time(t, 3)} for i, t in enumerate(at)),
                     key=lambda r: r["createdAt"], reverse=not ascending)
    mid = base + dt.timedelta(milliseconds=100 * mid_tick)
    leads = _Lead.split(records[:page], page >= len(records), mid, ascending)
    for lead, inside in zip(leads, (lambda r: parse_time(r["createdAt"]) < mid, lambda r: parse_time(r["createdAt"]) >= mid)):
        half = [r for r in records if inside(r)]
        # The half's own answer may order equal times differently: here the opposite way.
        half.sort(key=lambda r: (r["createdAt"], -int(r["id"]) if ascending else int(r["id"])), reverse=not ascending)
        known = {r["id"] for r in lead.records}
        assert known == {r["id"] for r in half[:len(known)]}  # reading on from offset len(lead) misses nothing
        if lead.complete:
            assert known == {r["id"] for r in half}


def test_split_reuses_nothing_from_records_out_of_order_or_without_a_time():
    mid = dt.datetime(2025, 6, 1, 0, 30, tzinfo=UTC)
    shuffled = [{"createdAt": "2025-06-01T00:10:00Z"}, {"createdAt": "2025-06-01T00:05:00Z"}, {"createdAt": "2025-06-01T00:40:00Z"}]
    assert _Lead.split(shuffled, False, mid, True) == (_Lead([]), _Lead([]))
    assert _Lead.split([{"createdAt": "yesterday"}], False, mid, True) == (_Lead([]), _Lead([]))
