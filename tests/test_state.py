"""The checkpoint-store contract, run against every store: SQLite and a real PostgreSQL."""

import datetime as dt
import sqlite3
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forwarder.errors import StateError
from forwarder.state import LedgerEntry, SqliteStore
from forwarder.state_postgres import PostgresStore


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, state_dir):
    """A function opening (and reopening) one store of the parametrized kind; every store is closed after the test."""
    if request.param == "sqlite":
        make = lambda **kw: SqliteStore(state_dir, **kw)  # noqa: E731
    else:
        url = request.getfixturevalue("pg_state_url")
        make = lambda **kw: PostgresStore(url, **kw)  # noqa: E731
    opened = []

    def opener(**kw):
        opened.append(make(**kw))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


def test_commit_get_reset_and_scratch(open_store):
    store = open_store()
    assert store.get("a") is None
    store.commit("a", {"until": "2024-01-01T00:00:00Z"})
    store.commit("a", {"until": "2024-01-02T00:00:00Z"})
    store.scratch_put("a", "report", {"id": "r1"})
    assert store.get("a") == {"until": "2024-01-02T00:00:00Z"}
    assert store.scratch_get("a") == {"report": {"id": "r1"}}
    store.close()
    again = open_store()  # survives reopening
    assert again.get("a") == {"until": "2024-01-02T00:00:00Z"}
    assert [n for n, _, _ in again.all()] == ["a"]
    assert again.reset("a") is True and again.get("a") is None and again.scratch_get("a") == {}
    assert again.reset("a") is False


def test_scratch_overwrite_delete_and_isolation(open_store):
    store = open_store()
    store.scratch_put("a", "job", 1)
    store.scratch_put("a", "job", {"id": 2})
    store.scratch_put("b", "job", [3])
    store.scratch_delete("a", "missing")
    assert store.scratch_get("a") == {"job": {"id": 2}} and store.scratch_get("b") == {"job": [3]}
    store.scratch_delete("a", "job")
    assert store.scratch_get("a") == {} and store.scratch_get("b") == {"job": [3]}


def test_all_lists_every_checkpoint_in_name_order_with_its_time(open_store):
    store = open_store()
    for name in ("b", "a", "c@backfill:2024-01-01T00:00:00Z/2024-01-02T00:00:00Z"):
        store.commit(name, {"n": name})
    rows = store.all()
    assert [n for n, _, _ in rows] == sorted(["a", "b", "c@backfill:2024-01-01T00:00:00Z/2024-01-02T00:00:00Z"])
    assert all(cursor == {"n": n} and updated.endswith("Z") for n, cursor, updated in rows)


def test_threads_commit_concurrently_without_losing_a_write(open_store):
    store = open_store()

    def writer(i):
        for j in range(20):
            store.commit(f"s{i}", {"j": j})
            store.scratch_put(f"s{i}", "k", j)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [store.get(f"s{i}") for i in range(4)] == [{"j": 19}] * 4
    assert [store.scratch_get(f"s{i}") for i in range(4)] == [{"k": 19}] * 4


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cursor=st.dictionaries(st.text(min_size=1, max_size=10), _json, max_size=5), name=st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s))
def test_any_json_cursor_round_trips(open_store, cursor, name):
    store = open_store()
    store.commit(name, cursor)
    store.scratch_put(name, "v", cursor)
    assert store.get(name) == cursor and store.scratch_get(name) == {"v": cursor}
    store.close()


def test_sqlite_is_in_wal_mode(state_dir):
    SqliteStore(state_dir).close()
    db = sqlite3.connect(state_dir / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


T0 = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
MIN = dt.timedelta(minutes=1)


def test_ledger_entries_commit_with_the_cursor_replace_and_prune(open_store):
    store = open_store(ledger_retention=86400 * 2)
    now = dt.datetime.now(dt.timezone.utc)
    old = LedgerEntry("s", now - dt.timedelta(days=5), now - dt.timedelta(days=4), 3, {"out": 3})
    store.commit("s", {"until": "a"}, [old, LedgerEntry("s", T0, T0 + MIN, 5, {"out": 5}, 1, 6)])
    assert store.ledger("s") == []  # both ended more than two days ago: pruned in the same commit
    recent = (now - dt.timedelta(hours=1)).replace(microsecond=0)
    store.commit("s", {"until": "b"}, [LedgerEntry("s", recent, recent + MIN, 5, {"out": 4}, 1, 6)])
    store.commit("s", {"until": "c"}, [LedgerEntry("s", recent, recent + MIN, 6, {"out": 6}, 0, 6)])  # read again: replaces
    store.close()
    again = open_store()
    [entry] = again.ledger("s")
    assert (entry.start, entry.end, entry.read, entry.delivered, entry.dead, entry.vendor_count) == (
        recent, recent + MIN, 6, {"out": 6}, 0, 6)
    assert entry.committed_at is not None and again.ledger("other") == [] and again.get("s") == {"until": "c"}


def test_a_failed_ledger_write_leaves_the_cursor_where_it_was(open_store, request):
    store = open_store()
    store.commit("s", {"until": "before"})
    if request.node.callspec.params["open_store"] == "sqlite":
        db = sqlite3.connect(store.path)
        db.execute("DROP TABLE ledger")
        db.commit()
        db.close()
    else:
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as conn:
            conn.execute("DROP TABLE ledger")
    with pytest.raises(StateError):
        store.commit("s", {"until": "after"}, [LedgerEntry("s", T0, T0 + MIN, 1, {"out": 1})])
    assert store.get("s") == {"until": "before"}  # one transaction: neither was written


def test_a_connection_whose_session_setting_fails_is_closed_not_left_open(monkeypatch):
    """Connected, then refused the idle-in-transaction setting: one line, and no open session left."""
    import psycopg

    from forwarder import state_postgres

    class Refusing:
        closed = False

        def execute(self, *args):
            raise psycopg.OperationalError("permission denied to set parameter")

        def close(self):
            self.closed = True

    conn = Refusing()
    monkeypatch.setattr(state_postgres.psycopg, "connect", lambda *a, **k: conn)
    with pytest.raises(StateError, match="cannot connect to postgresql://h/db: permission denied"):
        PostgresStore("postgresql://h/db")
    assert conn.closed
