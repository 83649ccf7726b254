import sqlite3

from forwarder.state import SqliteStore


def test_commit_get_reset_and_scratch(state_dir):
    store = SqliteStore(state_dir)
    assert store.get("a") is None
    store.commit("a", {"until": "2024-01-01T00:00:00Z"})
    store.commit("a", {"until": "2024-01-02T00:00:00Z"})
    store.scratch_put("a", "report", {"id": "r1"})
    assert store.get("a") == {"until": "2024-01-02T00:00:00Z"}
    assert store.scratch_get("a") == {"report": {"id": "r1"}}
    store.close()
    again = SqliteStore(state_dir)  # survives reopening
    assert again.get("a") == {"until": "2024-01-02T00:00:00Z"}
    assert [n for n, _, _ in again.all()] == ["a"]
    assert again.reset("a") is True and again.get("a") is None and again.scratch_get("a") == {}
    assert again.reset("a") is False
    again.close()


def test_wal_mode(state_dir):
    SqliteStore(state_dir).close()
    db = sqlite3.connect(state_dir / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
