"""Checkpoint stores.

``CheckpointStore`` is the interface (the Splunk add-on has its own KV-store
implementation); ``SqliteStore`` is the embedded default: one SQLite file in
WAL mode, one transaction per commit, safe to share between threads.

Three tables: ``checkpoints`` (one cursor per source instance), ``scratch``
(small per-source records a source must find again after a crash, e.g. report
ids in flight) and ``ledger`` (the coverage ledger: every closed window a source
read and committed, written in the transaction of its cursor; what it means is
worked out by ``forwarder.coverage``, so another store only needs ``commit`` with
entries and ``ledger``). ``forwarder/state_postgres.py`` has the same tables in
PostgreSQL, plus leases, for several replicas; ``open_store`` picks one from
the config.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from forwarder import jsoncodec
from forwarder.errors import StateError
from forwarder.timeutil import format_time, now, parse_time

#: Default age after which ledger entries are pruned (``[state] ledger_retention``).
LEDGER_RETENTION = 400 * 86400.0


@dataclass
class LedgerEntry:
    """One closed window ``[start, end)`` of a source, read completely and committed.

    ``read`` counts the vendor records of the window (dead-lettered ones
    included), ``delivered`` what each sink accepted, ``dead`` what could not be
    normalized, ``vendor_count`` the vendor's own count for the window when it
    gives one.
    """

    source: str
    start: dt.datetime
    end: dt.datetime
    read: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    dead: int = 0
    vendor_count: int | None = None
    committed_at: dt.datetime | None = None

if TYPE_CHECKING:
    from forwarder.config import Config
    from forwarder.state_postgres import PostgresStore


class CheckpointStore(Protocol):
    """What the pipeline and sources need from a checkpoint store."""

    def get(self, name: str) -> dict[str, Any] | None: ...

    def commit(self, name: str, cursor: dict[str, Any], ledger: Sequence[LedgerEntry] = ()) -> None:
        """Store the cursor and the ledger entries it closes atomically; prune entries past retention."""

    def ledger(self, source: str) -> list[LedgerEntry]:
        """The ledger entries of ``source``, oldest window first."""

    def scratch_get(self, name: str) -> dict[str, Any]: ...

    def scratch_put(self, name: str, key: str, value: Any) -> None: ...

    def scratch_delete(self, name: str, key: str) -> None: ...


def open_store(config: "Config") -> "SqliteStore | PostgresStore":
    """The configured store: PostgreSQL with ``[state] url``, else SQLite in ``[state] dir``."""
    url = config.state.get("url")
    if url:
        from forwarder.state_postgres import PostgresStore

        return PostgresStore(url, config.state.get("password"), ledger_retention=config.ledger_retention)
    return SqliteStore(config.state_dir, config.ledger_retention)


class SqliteStore:
    """Checkpoints in ``<state dir>/state.db``."""

    def __init__(self, directory: str | Path, ledger_retention: float = LEDGER_RETENTION) -> None:
        self.path = Path(directory) / "state.db"
        self.ledger_retention = ledger_retention
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
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ledger (name TEXT NOT NULL, from_time TEXT NOT NULL, to_time TEXT NOT NULL, "
                "read INTEGER NOT NULL, delivered TEXT NOT NULL, dead INTEGER NOT NULL, vendor_count INTEGER, "
                "committed_at TEXT NOT NULL, PRIMARY KEY (name, from_time, to_time))"
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state: cannot open {self.path}: {exc}") from None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._transaction([(sql, args)])

    def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        """Run ``statements`` in one transaction; return the rows of the first."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                rows = [self._db.execute(sql, args).fetchall() for sql, args in statements][0]
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

    def commit(self, name: str, cursor: dict[str, Any], ledger: Sequence[LedgerEntry] = ()) -> None:
        """Store ``cursor`` for ``name`` and the ledger entries it closes in one durable transaction.

        A window recorded again (same source, start and end) replaces the earlier
        entry; entries that ended more than ``ledger_retention`` seconds ago go.
        """
        stamp = now()
        statements = [(
            "INSERT INTO checkpoints (name, cursor, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            (name, jsoncodec.dumps_str(cursor), format_time(stamp)),
        )]
        for e in ledger:
            statements.append((
                "INSERT OR REPLACE INTO ledger (name, from_time, to_time, read, delivered, dead, vendor_count, committed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (e.source, _stamp(e.start), _stamp(e.end), e.read, jsoncodec.dumps_str(e.delivered), e.dead,
                 e.vendor_count, _stamp(stamp)),
            ))
        cutoff = _stamp(stamp - dt.timedelta(seconds=self.ledger_retention))
        for source in sorted({e.source for e in ledger}):
            statements.append(("DELETE FROM ledger WHERE name = ? AND to_time < ?", (source, cutoff)))
        self._transaction(statements)

    def ledger(self, source: str) -> list[LedgerEntry]:
        """The ledger entries of ``source``, oldest window first."""
        rows = self._run(
            "SELECT from_time, to_time, read, delivered, dead, vendor_count, committed_at FROM ledger "
            "WHERE name = ? ORDER BY from_time, to_time",
            (source,),
        )
        return [
            LedgerEntry(source, parse_time(a), parse_time(b), read, jsoncodec.loads(delivered), dead, vendor, parse_time(at))
            for a, b, read, delivered, dead, vendor, at in rows
        ]

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
        self._ledger: dict[tuple[str, dt.datetime, dt.datetime], LedgerEntry] = {}

    def get(self, name: str) -> dict[str, Any] | None:
        return self._cursors.get(name)

    def commit(self, name: str, cursor: dict[str, Any], ledger: Sequence[LedgerEntry] = ()) -> None:
        self._cursors[name] = cursor
        for e in ledger:
            self._ledger[(e.source, e.start, e.end)] = e

    def ledger(self, source: str) -> list[LedgerEntry]:
        return [e for key, e in sorted(self._ledger.items()) if key[0] == source]

    def scratch_get(self, name: str) -> dict[str, Any]:
        return dict(self._scratch.get(name, {}))

    def scratch_put(self, name: str, key: str, value: Any) -> None:
        self._scratch.setdefault(name, {})[key] = value

    def scratch_delete(self, name: str, key: str) -> None:
        self._scratch.get(name, {}).pop(key, None)


def _stamp(value: dt.datetime) -> str:
    """Fixed-width UTC text, so the ledger's times sort as text."""
    return format_time(value, 6)
