"""Checkpoints, leases, heartbeats and shared rate limits in PostgreSQL, for several replicas.

``PostgresStore`` implements the same ``CheckpointStore`` interface as
``SqliteStore`` (same tables, ``checkpoints`` and ``scratch``, so methods added to
one are ported to the other the same way), plus what replicas need to share work:

- **Leases with a fencing epoch** on each ``checkpoints`` row (``owner``,
  ``epoch``, ``lease_expires``). Acquiring a free or expired lease is one
  conditional upsert that bumps the epoch; the store remembers the epoch it
  holds per source, and every cursor or scratch write it makes for that source
  is conditional on the row still carrying that epoch. A write that matches no
  row raises ``LeaseLost``: a replica that was paused or cut off can never move a
  cursor another replica now owns. Policy (when to acquire, renew, shed) lives
  in ``forwarder/leases.py``.
- **Heartbeats** (``replicas``): live replicas are those seen within a lease
  period; each takes at most ceil(sources / live replicas) leases.
- **Shared token buckets** (``quotas``): a vendor quota per credential holds
  across replicas because the bucket is a row, updated under a row lock with
  the database server's clock and the same rule as the in-memory limiter
  (``forwarder.http.Bucket``).

The schema is versioned (``schema_version``) and created or migrated only by
``siem-forwarder setup state`` (``migrate``); a store refuses to open on a
schema it does not match. Times are the server's (``now()``), so replicas' clocks
do not matter. One connection per process, in autocommit mode, reopened after a
failure; every error becomes a ``StateError`` on one line.

A replica that stops inside a transaction (SIGSTOP, a frozen VM, a debugger) would keep
its row locks, and every other replica touching those rows (a lease, a cursor, a shared
quota) would wait on them for ever. Each session therefore asks the server to end it when
it sits ``IDLE_IN_TRANSACTION`` seconds inside a transaction: the locks go with it, and the
stopped replica, once resumed, finds its connection closed, reconnects and (its leases long
expired) loses them like any paused replica.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from forwarder import jsoncodec
from forwarder.errors import StateError
from forwarder.http import Bucket
from forwarder.secrets import Secret, redact
from forwarder.state import LEDGER_RETENTION, LedgerEntry
from forwarder.timeutil import format_time

try:
    import psycopg
except ImportError:  # psycopg is a dependency; this keeps `import forwarder.state_postgres` cheap to diagnose
    psycopg = None  # type: ignore[assignment]

#: Longest a session may sit inside a transaction (our transactions take milliseconds).
IDLE_IN_TRANSACTION = 10.0

#: Each entry moves the schema one version up; never edit one that has shipped, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE checkpoints (
        name text PRIMARY KEY,
        cursor text,
        updated_at timestamptz,
        owner text,
        epoch bigint NOT NULL DEFAULT 0,
        lease_expires timestamptz
    );
    CREATE TABLE scratch (
        name text NOT NULL, key text NOT NULL, value text NOT NULL, PRIMARY KEY (name, key)
    );
    CREATE TABLE replicas (
        id text PRIMARY KEY, started timestamptz NOT NULL, heartbeat timestamptz NOT NULL
    );
    CREATE TABLE quotas (
        key text PRIMARY KEY, tokens double precision NOT NULL, updated double precision NOT NULL,
        blocked_until double precision NOT NULL
    );
    """,
    """
    CREATE TABLE ledger (
        name text NOT NULL, from_time timestamptz NOT NULL, to_time timestamptz NOT NULL,
        read bigint NOT NULL, delivered text NOT NULL, dead bigint NOT NULL, vendor_count bigint,
        committed_at timestamptz NOT NULL, PRIMARY KEY (name, from_time, to_time)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
_SCHEMA_LOCK = 0x5F0C_57A7E  # pg_advisory_xact_lock key: one migration at a time


class LeaseLost(StateError):
    """This replica no longer holds the lease of a source: it must stop that source."""

    def __init__(self, name: str, epoch: int | None, why: str = "taken over by another replica or released by hand") -> None:
        self.name = name
        super().__init__(f"source {name}: lease lost (epoch {epoch} is no longer current: {why}); this replica stops the source")


def replica_id() -> str:
    """Who this process is in ``owner`` columns and ``pg_stat_activity``: host, pid and a random tag."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def _one_line(exc: BaseException) -> str:
    return redact(" ".join(str(exc).split())) or type(exc).__name__


class PostgresStore:
    """Checkpoints and leases in the PostgreSQL database at ``url``."""

    def __init__(
        self, url: str, password: Secret | None = None, *, owner: str | None = None, check_schema: bool = True,
        ledger_retention: float = LEDGER_RETENTION,
    ) -> None:
        if psycopg is None:
            raise StateError("state: [state] url needs the psycopg package (pip install 'psycopg[binary]')")
        self.url = url
        self.ledger_retention = ledger_retention
        self.owner = owner or replica_id()
        self._password = password
        self._lock = threading.RLock()
        self._conn: Any = None
        self._epochs: dict[str, int] = {}  # the fencing epoch of each lease acquired here, until released
        self._lost: set[str] = set()  # leases found taken: their writes keep failing until acquired again
        with self._locked() as conn:
            version = _schema_version(conn) if check_schema else SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            self.close()
            newer = version > SCHEMA_VERSION
            raise StateError(
                f"state: {url}: schema version {version}, this forwarder needs {SCHEMA_VERSION}: "
                + ("upgrade the forwarder" if newer else "run `siem-forwarder setup state`")
            )

    # -- connection ------------------------------------------------------------
    def _connect(self) -> Any:
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": self.owner[:63]}
        if "connect_timeout=" not in self.url:
            kwargs["connect_timeout"] = 10
        if self._password is not None:
            kwargs["password"] = self._password.reveal()
        conn = None
        try:
            conn = psycopg.connect(self.url, **kwargs)
            conn.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)", (f"{int(IDLE_IN_TRANSACTION * 1000)}ms",))
            return conn
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()  # connected, but the session setting failed: do not leave it open
            raise StateError(f"state: cannot connect to {self.url}: {_one_line(exc)}") from None

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """The connection, held by this thread for one statement or transaction; psycopg errors become StateError."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                yield self._conn
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    self._conn.close()  # reconnect on the next call
                raise StateError(f"state: {self.url}: {_one_line(exc)}") from None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        """One statement in its own transaction: (rows, affected row count)."""
        with self._locked() as conn:
            cur = conn.execute(sql, args)
            rows = cur.fetchall() if cur.description else []
            return rows, cur.rowcount

    # -- CheckpointStore --------------------------------------------------------
    def get(self, name: str) -> dict[str, Any] | None:
        """The stored cursor of ``name``, or None before its first commit."""
        rows, _ = self._run("SELECT cursor FROM checkpoints WHERE name = %s", (name,))
        return jsoncodec.loads(rows[0][0]) if rows and rows[0][0] is not None else None

    def commit(self, name: str, cursor: dict[str, Any], ledger: Sequence[LedgerEntry] = ()) -> None:
        """Store ``cursor`` for ``name`` and the ledger entries it closes in one transaction: only under
        the epoch this replica holds, if it holds one.

        A key without a lease here (a backfill's) is written unless another replica holds a live lease on it.
        A window recorded again replaces its entry; entries that ended over ``ledger_retention`` ago go.
        """
        text = jsoncodec.dumps_str(cursor)
        epoch = self._epochs.get(name)
        with self._locked() as conn, conn.transaction():
            if epoch is not None:
                count = conn.execute(
                    "UPDATE checkpoints SET cursor = %s, updated_at = now() WHERE name = %s AND epoch = %s", (text, name, epoch)
                ).rowcount
            else:
                count = conn.execute(
                    "INSERT INTO checkpoints (name, cursor, updated_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at "
                    "WHERE checkpoints.owner IS NULL OR checkpoints.lease_expires < now()",
                    (name, text),
                ).rowcount
            if count == 1:
                for e in ledger:
                    conn.execute(
                        "INSERT INTO ledger (name, from_time, to_time, read, delivered, dead, vendor_count, committed_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, now()) ON CONFLICT (name, from_time, to_time) DO UPDATE SET "
                        "read = excluded.read, delivered = excluded.delivered, dead = excluded.dead, "
                        "vendor_count = excluded.vendor_count, committed_at = excluded.committed_at",
                        (e.source, e.start, e.end, e.read, jsoncodec.dumps_str(e.delivered), e.dead, e.vendor_count),
                    )
                for source in sorted({e.source for e in ledger}):
                    conn.execute(
                        "DELETE FROM ledger WHERE name = %s AND to_time < now() - make_interval(secs => %s)",
                        (source, self.ledger_retention),
                    )
        if count == 1:
            return
        if epoch is not None:
            self._lost.add(name)
            raise LeaseLost(name, epoch)
        raise StateError(f"state: {name}: another replica holds its lease; not written (see `siem-forwarder state show`)")

    def ledger(self, source: str) -> list[LedgerEntry]:
        """The ledger entries of ``source``, oldest window first."""
        rows, _ = self._run(
            "SELECT from_time, to_time, read, delivered, dead, vendor_count, committed_at FROM ledger "
            "WHERE name = %s ORDER BY from_time, to_time",
            (source,),
        )
        return [
            LedgerEntry(source, a.astimezone(dt.timezone.utc), b.astimezone(dt.timezone.utc), read, jsoncodec.loads(delivered),
                        dead, vendor, at.astimezone(dt.timezone.utc))
            for a, b, read, delivered, dead, vendor, at in rows
        ]

    def reset(self, name: str) -> bool:
        """Forget the cursor and scratch of ``name`` and free its lease; True if there was a cursor.

        The epoch moves on (the row stays), so a replica still holding the old lease can no longer write.
        """
        with self._locked() as conn, conn.transaction():
            rows = conn.execute(
                "UPDATE checkpoints c SET cursor = NULL, updated_at = NULL, owner = NULL, lease_expires = NULL, "
                "epoch = c.epoch + 1 FROM checkpoints old WHERE c.name = %s AND old.name = c.name RETURNING old.cursor",
                (name,),
            ).fetchall()
            conn.execute("DELETE FROM scratch WHERE name = %s", (name,))
        return bool(rows and rows[0][0] is not None)

    def all(self) -> list[tuple[str, dict[str, Any], str]]:
        """Every checkpoint as (name, cursor, updated_at)."""
        rows, _ = self._run(
            "SELECT name, cursor, updated_at FROM checkpoints WHERE cursor IS NOT NULL ORDER BY name"
        )
        return [(n, jsoncodec.loads(c), _stamp(u)) for n, c, u in rows]

    def scratch_get(self, name: str) -> dict[str, Any]:
        """All scratch values of ``name``."""
        rows, _ = self._run("SELECT key, value FROM scratch WHERE name = %s", (name,))
        return {k: jsoncodec.loads(v) for k, v in rows}

    def scratch_put(self, name: str, key: str, value: Any) -> None:
        """Durably remember ``value`` under ``name``/``key`` (fenced like ``commit``)."""
        epoch = self._epochs.get(name)
        _, count = self._run(
            "INSERT INTO scratch (name, key, value) SELECT %s, %s, %s "
            "WHERE %s::bigint IS NULL OR EXISTS (SELECT 1 FROM checkpoints WHERE name = %s AND epoch = %s) "
            "ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
            (name, key, jsoncodec.dumps_str(value), epoch, name, epoch),
        )
        if count != 1:
            self._lost.add(name)
            raise LeaseLost(name, epoch)

    def scratch_delete(self, name: str, key: str) -> None:
        """Forget one scratch value (fenced like ``commit``)."""
        epoch = self._epochs.get(name)
        rows, _ = self._run(
            "WITH fence AS (SELECT %s::bigint IS NULL OR EXISTS (SELECT 1 FROM checkpoints WHERE name = %s AND epoch = %s) AS ok), "
            "gone AS (DELETE FROM scratch WHERE name = %s AND key = %s AND (SELECT ok FROM fence)) "
            "SELECT ok FROM fence",
            (epoch, name, epoch, name, key),
        )
        if not rows[0][0]:
            self._lost.add(name)
            raise LeaseLost(name, epoch)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- leases (policy in forwarder/leases.py) ----------------------------------
    def holds(self, name: str) -> int | None:
        """The epoch this replica holds for ``name``, or None (never acquired, released, or found lost)."""
        return None if name in self._lost else self._epochs.get(name)

    def acquire(self, name: str, period: float) -> int | None:
        """Take the lease of ``name`` if it is free or expired: its new epoch, or None if another replica holds it."""
        rows, _ = self._run(
            "INSERT INTO checkpoints (name, owner, epoch, lease_expires) VALUES (%s, %s, 1, now() + %s * interval '1 second') "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, epoch = checkpoints.epoch + 1, "
            "lease_expires = excluded.lease_expires "
            "WHERE checkpoints.owner IS NULL OR checkpoints.lease_expires < now() "
            "RETURNING epoch",
            (name, self.owner, period),
        )
        if not rows:
            return None
        self._epochs[name] = int(rows[0][0])
        self._lost.discard(name)
        return self._epochs[name]

    def renew(self, name: str, period: float) -> None:
        """Extend the lease held on ``name`` by ``period`` from now; ``LeaseLost`` if it is no longer ours."""
        epoch = self._epochs.get(name)
        if epoch is None:
            raise LeaseLost(name, None, "not held")
        _, count = self._run(
            "UPDATE checkpoints SET lease_expires = now() + %s * interval '1 second' WHERE name = %s AND epoch = %s AND owner = %s",
            (period, name, epoch, self.owner),
        )
        if count != 1:
            self._lost.add(name)
            raise LeaseLost(name, epoch)

    def release(self, name: str) -> None:
        """Give up the lease of ``name`` (clean stop, or shedding to a new replica)."""
        epoch = self._epochs.pop(name, None)
        self._lost.discard(name)
        if epoch is not None:
            self._run(
                "UPDATE checkpoints SET owner = NULL, lease_expires = NULL WHERE name = %s AND epoch = %s", (name, epoch)
            )

    def force_release(self, name: str) -> tuple[str | None, int] | None:
        """Free a lease by hand (``state release``): bump the epoch so its old holder can no longer write.

        Returns (previous owner, new epoch), or None if there is no such source.
        """
        rows, _ = self._run(
            "UPDATE checkpoints c SET owner = NULL, lease_expires = NULL, epoch = c.epoch + 1 "
            "FROM checkpoints old WHERE c.name = %s AND old.name = c.name RETURNING old.owner, c.epoch",
            (name,),
        )
        return (rows[0][0], int(rows[0][1])) if rows else None

    def free(self, names: list[str]) -> list[str]:
        """Those of ``names`` whose lease is free or expired (or that have no row yet)."""
        rows, _ = self._run(
            "SELECT n FROM unnest(%s::text[]) AS n WHERE NOT EXISTS ("
            "SELECT 1 FROM checkpoints c WHERE c.name = n AND c.owner IS NOT NULL AND c.lease_expires >= now())",
            (names,),
        )
        return [r[0] for r in rows]

    def heartbeat(self, period: float) -> int:
        """Say this replica is alive; forget replicas silent for ten periods; return how many are live."""
        with self._locked() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO replicas (id, started, heartbeat) VALUES (%s, now(), now()) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat = now()",
                (self.owner,),
            )
            conn.execute("DELETE FROM replicas WHERE heartbeat < now() - %s * interval '1 second'", (10 * period,))
            row = conn.execute(
                "SELECT count(*) FROM replicas WHERE heartbeat >= now() - %s * interval '1 second'", (period,)
            ).fetchone()
        return max(1, int(row[0]))

    def leave(self) -> None:
        """Remove this replica's heartbeat (clean stop): the others rebalance at once."""
        self._run("DELETE FROM replicas WHERE id = %s", (self.owner,))

    def leases(self) -> list[dict[str, Any]]:
        """Every source row with its lease, for ``state show``."""
        rows, _ = self._run(
            "SELECT name, owner, epoch, lease_expires, lease_expires >= now(), cursor, updated_at, now() FROM checkpoints ORDER BY name"
        )
        return [
            {"name": n, "owner": o, "epoch": int(e), "expires": x, "live": bool(live and o), "cursor": jsoncodec.loads(c) if c else None,
             "updated_at": u, "now": t}
            for n, o, e, x, live, c, u, t in rows
        ]

    # -- shared quotas ------------------------------------------------------------
    def rate_limiter(self, key: str, per_minute: float | None, burst: float | None) -> "SharedLimiter":
        """A limiter whose bucket is the ``quotas`` row ``key``: shared by every replica (see ``http.share_limiters_through``)."""
        return SharedLimiter(self, key, per_minute, burst)

    def _bucket(self, key: str, capacity: float, change: Callable[[Bucket, float], float]) -> float:
        """Apply ``change(bucket, now)`` to the ``quotas`` row under its row lock, with the server's clock."""
        with self._locked() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO quotas (key, tokens, updated, blocked_until) "
                "VALUES (%s, %s, extract(epoch FROM clock_timestamp()), 0) ON CONFLICT (key) DO NOTHING",
                (key, capacity),
            )
            tokens, updated, blocked, now = conn.execute(
                "SELECT tokens, updated, blocked_until, extract(epoch FROM clock_timestamp())::float8 FROM quotas WHERE key = %s FOR UPDATE",
                (key,),
            ).fetchone()
            bucket = Bucket(tokens, updated, blocked)
            result = change(bucket, now)
            conn.execute(
                "UPDATE quotas SET tokens = %s, updated = %s, blocked_until = %s WHERE key = %s",
                (bucket.tokens, bucket.updated, bucket.blocked_until, key),
            )
        return result


class SharedLimiter:
    """``forwarder.http`` limiter interface over a ``quotas`` row: the quota holds across replicas."""

    def __init__(self, store: PostgresStore, key: str, per_minute: float | None, burst: float | None) -> None:
        self.store = store
        self.key = key
        self.per_minute = per_minute
        self.capacity = burst if burst is not None else (per_minute or 0)
        self.sleep = time.sleep

    def acquire(self) -> None:
        """Wait until a request may be sent, then take one token from the shared bucket."""
        while True:
            wait = self.store._bucket(self.key, self.capacity, lambda b, now: b.take(now, self.per_minute, self.capacity))
            if not wait:
                return
            self.sleep(wait)

    def block_for(self, seconds: float) -> None:
        """Stop every replica's requests through this key for ``seconds``."""
        self.store._bucket(self.key, self.capacity, lambda b, now: b.block(now, seconds, self.per_minute) or 0.0)


def migrate(url: str, password: Secret | None = None) -> list[str]:
    """Create or upgrade the schema to ``SCHEMA_VERSION`` (idempotent, safe to run from several replicas at once)."""
    store = PostgresStore(url, password, check_schema=False)
    try:
        with store._locked() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            before = _schema_version(conn)
            if before > SCHEMA_VERSION:
                raise StateError(f"state: {url}: schema version {before} is newer than this forwarder ({SCHEMA_VERSION}); upgrade it")
            for sql in MIGRATIONS[before:]:
                conn.execute(sql)
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
    finally:
        store.close()
    if before == SCHEMA_VERSION:
        return [f"state: {url}: schema is up to date (version {SCHEMA_VERSION})"]
    return [f"state: {url}: schema migrated from version {before} to {SCHEMA_VERSION}"]


def _schema_version(conn: Any) -> int:
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def _stamp(value: dt.datetime | None) -> str:
    return format_time(value) if value is not None else ""
