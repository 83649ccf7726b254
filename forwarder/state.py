"""Checkpoint stores.

``CheckpointStore`` is the interface (the Splunk add-on has its own KV-store
implementation); ``SqliteStore`` is the embedded default: one SQLite file in
WAL mode, one transaction per commit, safe to share between threads.

Two tables: ``checkpoints`` (one cursor per source instance) and ``scratch``
(small per-source records a source must find again after a crash, e.g. report
ids in flight). ``forwarder/state_postgres.py`` has the same tables in
PostgreSQL, plus leases, for several replicas; ``open_store`` picks one from
the config.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from forwarder import jsoncodec
from forwarder.errors import StateError
from forwarder.timeutil import format_time, now

if TYPE_CHECKING:
    from forwarder.config import Config
    from forwarder.state_postgres import PostgresStore


class CheckpointStore(Protocol):
    """What the pipeline and sources need from a checkpoint store."""

    def get(self, name: str) -> dict[str, Any] | None: ...

    def commit(self, name: str, cursor: dict[str, Any]) -> None: ...

    def scratch_get(self, name: str) -> dict[str, Any]: ...

    def scratch_put(self, name: str, key: str, value: Any) -> None: ...

    def scratch_delete(self, name: str, key: str) -> None: ...


def open_store(config: "Config") -> "SqliteStore | PostgresStore":
    """The configured store: PostgreSQL with ``[state] url``, else SQLite in ``[state] dir``."""
    url = config.state.get("url")
    if url:
        from forwarder.state_postgres import PostgresStore

        return PostgresStore(url, config.state.get("password"))
    return SqliteStore(config.state_dir)


class SqliteStore:
    """Checkpoints in ``<state dir>/state.db``."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / "state.db"
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated_at TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scratch (name TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name, key))"
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state: cannot open {self.path}: {exc}") from None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                rows = self._db.execute(sql, args).fetchall()
                self._db.execute("COMMIT")
                return rows
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StateError(f"state: {self.path}: {exc}") from None

    def get(self, name: str) -> dict[str, Any] | None:
        """The stored cursor of ``name``, or None before its first commit."""
        rows = self._run("SELECT cursor FROM checkpoints WHERE name = ?", (name,))
        return jsoncodec.loads(rows[0][0]) if rows else None

    def commit(self, name: str, cursor: dict[str, Any]) -> None:
        """Store ``cursor`` for ``name`` in one durable transaction."""
        self._run(
            "INSERT INTO checkpoints (name, cursor, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            (name, jsoncodec.dumps_str(cursor), format_time(now())),
        )

    def reset(self, name: str) -> bool:
        """Forget the cursor and scratch of ``name``; True if there was one."""
        rows = self._run("DELETE FROM checkpoints WHERE name = ? RETURNING name", (name,))
        self._run("DELETE FROM scratch WHERE name = ?", (name,))
        return bool(rows)

    def all(self) -> list[tuple[str, dict[str, Any], str]]:
        """Every checkpoint as (name, cursor, updated_at)."""
        rows = self._run("SELECT name, cursor, updated_at FROM checkpoints ORDER BY name")
        return [(n, jsoncodec.loads(c), u) for n, c, u in rows]

    def scratch_get(self, name: str) -> dict[str, Any]:
        """All scratch values of ``name``."""
        rows = self._run("SELECT key, value FROM scratch WHERE name = ?", (name,))
        return {k: jsoncodec.loads(v) for k, v in rows}

    def scratch_put(self, name: str, key: str, value: Any) -> None:
        """Durably remember ``value`` under ``name``/``key``."""
        self._run(
            "INSERT INTO scratch (name, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT(name, key) DO UPDATE SET value = excluded.value",
            (name, key, jsoncodec.dumps_str(value)),
        )

    def scratch_delete(self, name: str, key: str) -> None:
        """Forget one scratch value."""
        self._run("DELETE FROM scratch WHERE name = ? AND key = ?", (name, key))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class MemoryStore:
    """A store that keeps nothing on disk: used by ``export``, which touches no checkpoint."""

    def __init__(self) -> None:
        self._cursors: dict[str, dict[str, Any]] = {}
        self._scratch: dict[str, dict[str, Any]] = {}

    def get(self, name: str) -> dict[str, Any] | None:
        return self._cursors.get(name)

    def commit(self, name: str, cursor: dict[str, Any]) -> None:
        self._cursors[name] = cursor

    def scratch_get(self, name: str) -> dict[str, Any]:
        return dict(self._scratch.get(name, {}))

    def scratch_put(self, name: str, key: str, value: Any) -> None:
        self._scratch.setdefault(name, {})[key] = value

    def scratch_delete(self, name: str, key: str) -> None:
        self._scratch.get(name, {}).pop(key, None)
