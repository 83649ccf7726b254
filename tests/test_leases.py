"""Leases, fencing, fair share, shared quotas and schema set-up on a real PostgreSQL."""

import logging
import threading
from types import SimpleNamespace

import psycopg
import pytest

from forwarder import cli
from forwarder.config import parse_config
from forwarder.errors import ConfigError, StateError
from forwarder.leases import LeaseKeeper
from forwarder.state_postgres import SCHEMA_VERSION, LeaseLost, PostgresStore, migrate


@pytest.fixture
def stores(pg_state_url):
    """``stores(n)``: n replicas' stores on one database; all closed after the test."""
    opened = []

    def make(n=1):
        new = [PostgresStore(pg_state_url) for _ in range(n)]
        opened.extend(new)
        return new

    yield make
    for store in opened:
        store.close()


def expire(url, name):
    """Let the lease of ``name`` run out (as if its period had passed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE checkpoints SET lease_expires = now() - interval '1 second' WHERE name = %s", (name,))


def test_a_held_lease_is_not_acquired_by_another_replica(stores):
    a, b = stores(2)
    assert a.acquire("src", 30) == 1
    assert b.acquire("src", 30) is None
    a.renew("src", 30)
    a.commit("src", {"until": "1"})
    assert b.get("src") == {"until": "1"}


def test_a_replica_whose_lease_was_taken_over_cannot_write(stores, pg_state_url):
    a, b = stores(2)
    a.acquire("src", 30)
    a.commit("src", {"until": "a"})
    a.scratch_put("src", "job", 1)
    expire(pg_state_url, "src")  # A was paused past its lease
    assert b.acquire("src", 30) == 2
    b.commit("src", {"until": "b"})
    with pytest.raises(LeaseLost, match="source src: lease lost .epoch 1 is no longer current"):
        a.commit("src", {"until": "a-late"})
    a.acquire("src", 30)  # A tries again: B holds it
    for write in (lambda: a.commit("src", {"until": "a-late"}), lambda: a.scratch_put("src", "job", 2),
                  lambda: a.scratch_delete("src", "job"), lambda: a.renew("src", 30)):
        with pytest.raises(LeaseLost):
            write()
    assert b.get("src") == {"until": "b"} and b.scratch_get("src") == {"job": 1}


def test_an_expired_lease_nobody_took_is_still_renewed_by_its_holder(stores, pg_state_url):
    (a,) = stores(1)
    a.acquire("src", 30)
    expire(pg_state_url, "src")
    a.renew("src", 30)
    a.commit("src", {"until": "x"})


def test_release_by_hand_fences_the_old_holder_and_frees_the_lease(stores):
    a, b = stores(2)
    a.acquire("src", 30)
    owner, epoch = b.force_release("src")
    assert owner == a.owner and epoch == 2
    with pytest.raises(LeaseLost):
        a.commit("src", {"until": "a"})
    assert b.acquire("src", 30) == 3
    assert b.force_release("nope") is None


def test_reset_fences_the_holder(stores):
    a, b = stores(2)
    a.acquire("src", 30)
    a.commit("src", {"until": "a"})
    assert b.reset("src") is True
    assert b.acquire("src", 30) == 3  # the epoch never goes back: A's epoch 1 stays stale
    with pytest.raises(LeaseLost):
        a.commit("src", {"until": "a2"})
    assert b.get("src") is None and b.reset("src") is False


def test_a_backfill_key_is_written_without_a_lease_but_never_over_a_live_one(stores):
    a, b = stores(2)
    b.commit("src@backfill:x", {"until": "1"})
    a.acquire("src", 30)
    with pytest.raises(StateError, match="another replica holds its lease"):
        b.commit("src", {"until": "b"})


def test_two_replicas_never_hold_one_lease(stores, pg_state_url):
    """Eight replicas race for the same lease 40 times (the first time before its row exists): one wins each time."""
    contenders = stores(8)
    rounds = 40
    barrier = threading.Barrier(len(contenders) + 1)
    won = [[None] * rounds for _ in contenders]

    def race(i, store):
        for r in range(rounds):
            barrier.wait()
            won[i][r] = store.acquire("src", 30)
            barrier.wait()

    threads = [threading.Thread(target=race, args=(i, s)) for i, s in enumerate(contenders)]
    for t in threads:
        t.start()
    for r in range(rounds):
        barrier.wait()  # all race
        barrier.wait()  # all done
        expire(pg_state_url, "src")
    for t in threads:
        t.join()
    for r in range(rounds):
        epochs = [won[i][r] for i in range(len(contenders)) if won[i][r] is not None]
        assert epochs == [r + 1], f"round {r}: {epochs}"


def _keeper(store, names):
    sources = [SimpleNamespace(name=n) for n in names]  # the keeper only needs the names
    return LeaseKeeper(store, sources, 30, lambda cfg, stopping, guard: stopping.wait())


def _settle(*keepers):
    """Tick every keeper, waiting for the workers it stopped, until nothing changes."""
    for _ in range(6):
        for k in keepers:
            k.tick()
            for thread, stopping in list(k.workers.values()):
                if stopping.is_set():
                    thread.join()


def test_leases_spread_evenly_and_rebalance_when_a_replica_joins_or_leaves(stores, pg_state_url):
    names = [f"s{i}" for i in range(7)]
    a, b, c = stores(3)
    ka = _keeper(a, names)
    ka.tick()
    assert len(ka.workers) == 7  # alone: everything
    kb, kc = _keeper(b, names), _keeper(c, names)
    _settle(ka, kb, kc)
    held = [set(k.workers) for k in (ka, kb, kc)]
    assert max(map(len, held)) == 3 and sum(map(len, held)) == 7 and set().union(*held) == set(names)  # ceil(7/3) = 3
    kc.shutdown()  # a clean stop releases at once
    _settle(ka, kb)
    held = [set(k.workers) for k in (ka, kb)]
    assert sorted(map(len, held)) == [3, 4] and set().union(*held) == set(names)
    for k in (ka, kb):
        k.shutdown()
    rows = a.leases()
    assert all(r["owner"] is None for r in rows)


def test_a_lost_lease_stops_its_worker_with_one_line(stores, pg_state_url, caplog):
    a, b = stores(2)
    ka = _keeper(a, ["src"])
    ka.tick()
    thread, stopping = ka.workers["src"]
    expire(pg_state_url, "src")
    assert b.acquire("src", 30) == 2
    with caplog.at_level(logging.INFO, logger="forwarder.leases"):
        ka.tick()  # the renewal finds the lease gone: the worker is told to stop
        thread.join()
        ka.tick()  # reaped: said once
        ka.tick()
    lost = [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]
    assert lost == ["source src: lease lost to another replica (or released by hand); stopped here, its new holder resumes from the last commit"]
    assert "src" not in ka.workers
    ka.shutdown()
    assert b.holds("src") == 2


def test_the_quota_bucket_is_shared_between_replicas(stores):
    a, b = stores(2)
    first, second = a.rate_limiter("k", 60, 1), b.rate_limiter("k", 60, 1)
    first.acquire()  # the one token
    waits = []

    class Waited(Exception):
        pass

    def sleep(seconds):
        waits.append(seconds)
        raise Waited

    second.sleep = sleep
    with pytest.raises(Waited):
        second.acquire()
    assert 0.5 < waits[0] <= 1.0  # one token a second: the other replica's request made this one wait
    first.block_for(120)  # a 429 seen by one replica
    with pytest.raises(Waited):
        second.acquire()
    assert 100 < waits[1] <= 120
    unrelated = b.rate_limiter("other", 60, 1)
    unrelated.acquire()


def test_setup_is_versioned_and_idempotent_and_the_store_checks_the_version(pg_url):
    with pytest.raises(StateError, match="run `siem-forwarder setup state`"):
        PostgresStore(pg_url)
    results = []
    threads = [threading.Thread(target=lambda: results.append(migrate(pg_url))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r[0].split(": ")[-1] for r in results) == [
        f"schema is up to date (version {SCHEMA_VERSION})"] * 2 + [f"schema migrated from version 0 to {SCHEMA_VERSION}"]
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StateError, match="upgrade the forwarder"):
        PostgresStore(pg_url)
    with pytest.raises(StateError, match="newer than this forwarder"):
        migrate(pg_url)


def test_an_unreachable_database_is_one_line(closed_port):
    with pytest.raises(StateError) as err:
        PostgresStore(f"postgresql://nobody@127.0.0.1:{closed_port}/db")
    assert "\n" not in str(err.value) and f"127.0.0.1:{closed_port}" in str(err.value)


@pytest.mark.parametrize("url, problem", [
    ("postgresql://user:hunter2@db/x", "must not carry a password"),
    ("postgresql://db/x?password=hunter2", "must not carry a password"),
    ("mysql://db/x", "must be a postgresql:// URL"),
])
def test_state_url_is_checked_and_never_carries_a_password(url, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        parse_config({"state": {"url": url}})
    assert "hunter2" not in str(err.value)


def test_cli_setup_show_and_release(pg_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEST_PG_PASSWORD", "not-needed-with-trust")
    cfg = tmp_path / "forwarder.toml"
    cfg.write_text(f'[state]\nurl = "{pg_url}"\npassword = "env:TEST_PG_PASSWORD"\ndir = "{tmp_path}"\n')
    assert cli.main(["setup", "state", "-c", str(cfg)]) == 0
    assert cli.main(["setup", "state", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"migrated from version 0 to {SCHEMA_VERSION}" in out and "up to date" in out
    store = PostgresStore(pg_url)
    store.acquire("gl", 60)
    store.commit("gl", {"until": "2026-01-01T00:00:00Z"})
    assert cli.main(["state", "show", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("gl\t"))
    name, owner, epoch, lease, lag, cursor = line.split("\t")
    assert owner == store.owner and epoch == "1" and lease.startswith("until ") and lag.endswith("s") and "2026-01-01" in cursor
    assert cli.main(["state", "release", "gl", "-c", str(cfg)]) == 0
    assert f"was held by {store.owner}" in capsys.readouterr().out
    with pytest.raises(LeaseLost):
        store.commit("gl", {"until": "x"})
    assert cli.main(["state", "release", "nope", "-c", str(cfg)]) == 2
    sqlite = tmp_path / "sqlite.toml"
    sqlite.write_text(f'[state]\ndir = "{tmp_path}"\n')
    assert cli.main(["setup", "state", "-c", str(sqlite)]) == 2
    assert cli.main(["state", "release", "gl", "-c", str(sqlite)]) == 2
    assert "not-needed-with-trust" not in capsys.readouterr().err
    store.close()


def test_run_once_takes_the_lease_skips_a_held_source_and_releases_after(pg_state_url, tmp_path, monkeypatch):
    from forwarder import runner
    from forwarder.config import load_config
    from forwarder.simulators.crusoe import CrusoeSimulator

    with CrusoeSimulator(seed=3, records=40) as sim:
        table, env = sim.demo_source(40)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cfg = tmp_path / "forwarder.toml"
        lines = ["[state]", f'dir = "{tmp_path / "state"}"', f'url = "{pg_state_url}"', "[[source]]"]
        lines += [f'{k} = "{v}"' for k, v in table.items()] + ['lookback = "8h"']
        lines += ["[[sink]]", 'name = "out"', 'type = "file"', f'path = "{tmp_path / "out.ndjson"}"']
        cfg.write_text("\n".join(lines) + "\n")
        config = load_config(cfg)
        other = PostgresStore(pg_state_url)
        other.acquire(table["name"], 60)
        (held,) = runner.run_once(config)
        assert "held by another replica" in held.error and not (tmp_path / "out.ndjson").exists()
        other.release(table["name"])
        (done,) = runner.run_once(config)
        assert done.error is None and done.events == 40
        (row,) = other.leases()
        assert row["owner"] is None and row["epoch"] == 2 and row["cursor"] == done.cursor
        other.close()


def test_a_dropped_connection_is_one_error_line_then_the_store_reconnects(stores, pg_state_url):
    (a,) = stores(1)
    a.acquire("src", 30)
    with psycopg.connect(pg_state_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (a.owner,))
    with pytest.raises(StateError) as err:
        a.commit("src", {"until": "1"})
    assert "\n" not in str(err.value)
    a.commit("src", {"until": "1"})  # a new connection, and still the lease holder
    assert a.get("src") == {"until": "1"}


def test_a_replica_stopped_inside_a_transaction_does_not_lock_the_others_out(stores, pg_state_url, monkeypatch):
    """A paused replica's row locks end with its session (idle_in_transaction_session_timeout): another
    replica takes the expired lease instead of waiting on the lock for ever."""
    from forwarder import state_postgres

    monkeypatch.setattr(state_postgres, "IDLE_IN_TRANSACTION", 0.5)
    a, b = stores(2)
    assert a.acquire("src", -1) is not None  # a lease that has already expired: a was paused past it
    locked, resume = threading.Event(), threading.Event()

    def stalled_commit():  # a's process stops between two statements of a transaction
        try:
            with a._locked() as conn, conn.transaction():
                conn.execute("SELECT 1 FROM checkpoints WHERE name = 'src' FOR UPDATE")
                locked.set()
                resume.wait()
                conn.execute("SELECT 1")
        except StateError:
            pass  # the server ended the session

    stalled = threading.Thread(target=stalled_commit)
    stalled.start()
    try:
        assert locked.wait(10)
        with b._locked() as conn:
            conn.execute("SET lock_timeout = '5s'")  # without the fix b would wait for ever: fail instead
        assert b.acquire("src", 30) is not None  # waits for the row only until a's session is ended
    finally:
        resume.set()
        stalled.join()
    with pytest.raises(LeaseLost):
        a.commit("src", {"until": "x"})  # resumed: reconnects, and the lease is no longer a's
