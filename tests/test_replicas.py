"""Several `siem-forwarder run` replicas on one real PostgreSQL: failover, fencing, shared quota, one queue reader.

Each replica is a real process with its own state directory (spools, outboxes,
dead letters) and the shared ``[state] url``. The lease period is short (2 s)
so a dead replica's sources move within seconds. Nothing here asserts on time:
the takeover time is measured and printed.
"""

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg
import pytest

from forwarder import cli
from forwarder.simulators.base import Faults
from forwarder.simulators.carbon_black_cloud import DEMO_SECRET, CarbonBlackCloudSimulator
from forwarder.simulators.crusoe import CrusoeSimulator
from forwarder.simulators.hpe_greenlake import GreenLakeSimulator
from tests.servers.elasticsearch import ElasticsearchServer

LEASE = "2s"
FAST_HTTP = {"backoff_base": 0.01, "backoff_max": 0.2}

# Records every change of a cursor with the lease it was made under and the connection that made it
# (each replica's connection carries its owner id as application_name): the proof that only epoch-holders commit.
AUDIT = """
CREATE TABLE commit_audit (name text, epoch bigint, owner text, committer text);
CREATE FUNCTION audit_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.cursor IS DISTINCT FROM OLD.cursor THEN
    INSERT INTO commit_audit VALUES (NEW.name, NEW.epoch, NEW.owner, current_setting('application_name'));
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER audit_commit AFTER UPDATE ON checkpoints FOR EACH ROW EXECUTE FUNCTION audit_commit();
"""


def _toml_value(value):
    return json.dumps(value)  # strings, numbers, booleans and lists of them are the same in TOML


def _tables(kind, tables):
    lines = []
    for table in tables:
        lines.append(f"[[{kind}]]")
        nested = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if k not in nested]
        for key, sub in nested.items():
            lines.append(f"[{kind}.{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in sub.items()]
    return lines


class Replicas:
    """Starts ``siem-forwarder run`` processes; each has its own directory, config and log."""

    def __init__(self, tmp_path, url):
        self.tmp_path = tmp_path
        self.url = url
        self.procs = []

    def config(self, i, sources, sinks):
        home = self.tmp_path / f"replica{i}"
        home.mkdir(exist_ok=True)
        lines = ["[state]", f'dir = "{home}"', f'url = "{self.url}"', f'lease = "{LEASE}"', "[log]", 'level = "info"']
        lines += _tables("source", sources) + _tables("sink", sinks)
        path = home / "forwarder.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, i, sources, sinks):
        path = self.config(i, sources, sinks)
        log = open(path.parent / "run.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "forwarder", "run", "--config", str(path)],
                                stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        proc.log = path.parent / "run.log"
        self.procs.append(proc)
        return proc

    def start_with_files(self, n, sources):
        """``n`` replicas, each writing to its own file."""
        return [self.start(i, sources, [{"name": "out", "type": "file", "path": str(self.tmp_path / f"out{i}.ndjson")}])
                for i in range(n)]

    def all_hold_leases(self):
        """True once every running replica holds at least one live lease."""
        owners = {self.owner_pid(o) for _, o, _, live, _ in leases(self.url) if live and o}
        return owners == {p.pid for p in self.procs if p.poll() is None}

    def owner_pid(self, owner):
        return int(owner.split(":")[1]) if owner else None

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


@pytest.fixture
def replicas(tmp_path, pg_state_url):
    r = Replicas(tmp_path, pg_state_url)
    yield r
    r.stop()


def leases(url):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT name, owner, epoch, lease_expires >= now(), cursor IS NOT NULL FROM checkpoints ORDER BY name"
        ).fetchall()


def crusoe_sources(tmp_path, sims, records, limit, prefix):
    """One source per Crusoe simulator (secrets in files: each simulator has its own)."""
    sources = []
    for i, sim in enumerate(sims):
        table, env = sim.demo_source(records)
        secret = tmp_path / f"crusoe{i}.secret"
        secret.write_text(next(iter(env.values())))
        sources.append({**table, "name": f"{prefix}{i:02d}", "secret_key": f"file:{secret}", "lookback": "8h",
                        "limit": limit, "window": "30m", "interval": "1s", "http": FAST_HTTP})
    return sources


def wait_for(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)  # polling an observable condition
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_failover_three_replicas_one_killed_nothing_lost_no_duplicates(tmp_path, replicas, pg_state_url):
    sources_n, records = 12, 500
    with psycopg.connect(pg_state_url, autocommit=True) as conn:
        conn.execute(AUDIT)
    # Slow until every replica holds its share, so the kill lands mid-run however long the replicas take to start.
    sims = [CrusoeSimulator(seed=100 + i, records=records, faults=Faults(latency=1.0)).start() for i in range(sources_n)]
    es = ElasticsearchServer().start()
    try:
        sources = crusoe_sources(tmp_path, sims, records, 20, "crusoe")
        sinks = [{"name": "es", "type": "elasticsearch", "hosts": [es.url], "http": FAST_HTTP}]
        assert cli.main(["setup", "elasticsearch", "-c", str(replicas.config(0, sources, sinks))]) == 0
        procs = [replicas.start(i, sources, sinks) for i in range(3)]
        pids = {p.pid for p in procs}

        def spread():
            """Every source leased, every replica holding some and having committed under one of them."""
            rows = leases(pg_state_url)
            holders = Counter(replicas.owner_pid(owner) for _, owner, _, live, _ in rows if live and owner)
            with psycopg.connect(pg_state_url, autocommit=True) as conn:
                committers = {replicas.owner_pid(c) for (c,) in conn.execute("SELECT committer FROM commit_audit")}
            return holders if set(holders) == pids == committers and sum(holders.values()) == sources_n else None

        holders = wait_for(spread, "every replica to hold leases and commit")
        for sim in sims:
            sim.faults.latency = 0.12
        stored_at_kill = es.count("logs-*")
        victim = next(p for p in procs if p.pid == holders.most_common(1)[0][0])
        moved = [name for name, owner, _, live, _ in leases(pg_state_url) if replicas.owner_pid(owner) == victim.pid]
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait()

        def taken_over():
            rows = {name: (owner, live) for name, owner, _, live, _ in leases(pg_state_url)}
            return all(rows[n][1] and replicas.owner_pid(rows[n][0]) not in (None, victim.pid) for n in moved)

        wait_for(taken_over, "the killed replica's sources to move")
        takeover = time.monotonic() - killed_at
        wait_for(lambda: es.count("logs-*") >= sources_n * records, "every record to reach Elasticsearch")
        survivors = [p for p in procs if p is not victim]
        codes = replicas.stop()
    finally:
        es.stop()
        for sim in sims:
            sim.stop()

    assert stored_at_kill < sources_n * records, "the kill came after everything was delivered"
    docs = [doc for index in es.indices.values() for doc in index.docs.values()]
    ids = [i for index in es.indices.values() for i in index.docs]
    assert len(ids) == len(set(ids)) == sources_n * records
    per_org = Counter(doc["organization"]["id"] for doc in docs)
    assert sorted(per_org.values()) == [records] * sources_n and set(per_org) == {sim.org_id for sim in sims}
    redelivered = sum(n - 1 for n in es.item_attempts.values())
    assert [codes[procs.index(p)] for p in survivors] == [0, 0]
    for proc in survivors:
        log = proc.log.read_text()
        assert "Traceback" not in log and "lease lost" not in log, log[-3000:]
    with psycopg.connect(pg_state_url, autocommit=True) as conn:
        audit = conn.execute("SELECT name, epoch, owner, committer FROM commit_audit").fetchall()
        final = conn.execute("SELECT count(*) FROM checkpoints WHERE owner IS NOT NULL").fetchone()[0]
    assert audit and all(owner == committer for _, _, owner, committer in audit), "a commit by a replica that did not hold the lease"
    assert {name for name, *_ in audit} == {s["name"] for s in sources}
    assert final == 0, "a clean stop releases every lease"
    epochs = Counter(name for name, _ in {(name, epoch) for name, epoch, _, _ in audit})
    print(f"\nfailover: {sources_n} sources, 3 replicas, 1 SIGKILL ({len(moved)} sources moved), "
          f"{sources_n * records} records, {len(set(ids))} stored, 0 duplicate _ids, {redelivered} re-deliveries refused by _id, "
          f"takeover {takeover:.1f}s with a {LEASE} lease, {len(audit)} commits all by epoch-holders, "
          f"{sum(epochs.values())} (source, epoch) pairs committed")


@pytest.mark.slow
def test_a_paused_replica_loses_its_leases_and_cannot_commit(tmp_path, replicas, pg_state_url):
    """SIGSTOP one replica past its lease: the others take its sources; resumed, it stops them with one line each."""
    with psycopg.connect(pg_state_url, autocommit=True) as conn:
        conn.execute(AUDIT)
    sims = [CrusoeSimulator(seed=200 + i, records=300, faults=Faults(latency=0.1)).start() for i in range(4)]
    try:
        sources = crusoe_sources(tmp_path, sims, 300, 10, "c")
        procs = replicas.start_with_files(2, sources)
        wait_for(replicas.all_hold_leases, "both replicas to hold leases")
        paused = procs[0]
        held = [n for n, o, _, live, _ in leases(pg_state_url) if replicas.owner_pid(o) == paused.pid]
        paused.send_signal(signal.SIGSTOP)

        def moved():
            rows = {n: o for n, o, _, live, _ in leases(pg_state_url) if live}
            return all(replicas.owner_pid(rows.get(n)) == procs[1].pid for n in held)

        wait_for(moved, "the paused replica's sources to move")
        paused.send_signal(signal.SIGCONT)
        wait_for(lambda: paused.log.read_text().count("lease lost") >= len(held), "the resumed replica to notice")
        replicas.stop()
    finally:
        for sim in sims:
            sim.stop()
    log = paused.log.read_text()
    lost = [line for line in log.splitlines() if "lease lost" in line]
    assert sorted(line.split("source ")[1].split(":")[0] for line in lost) == sorted(held), lost
    assert "Traceback" not in log
    with psycopg.connect(pg_state_url, autocommit=True) as conn:
        audit = conn.execute("SELECT owner, committer FROM commit_audit").fetchall()
    assert audit and all(owner == committer for owner, committer in audit)


@pytest.mark.slow
def test_greenlake_quota_holds_across_three_replicas(tmp_path, replicas, pg_state_url):
    """6 sources of one client id on 3 replicas: the simulator never sees more than 100 requests in one of its minutes.

    The simulator's clock runs 10x fast, so its minute is 6 s; the sources' rate_limit is 900 per (real) minute,
    i.e. 90 per simulator minute. Each replica alone would stay under it; only the shared bucket keeps all three under.
    """
    start = time.time()
    sim = GreenLakeSimulator(rate_limit=100, rate_overall=None, per_hour=0, clock=lambda: start + (time.time() - start) * 10)
    sim.start()
    try:
        ws = next(iter(sim.workspaces.values()))
        client = next(c for c in sim.clients.values() if c.workspace is ws)
        now = dt.datetime.now(dt.timezone.utc)
        sim.add_records(ws.id, now - dt.timedelta(hours=2), now - dt.timedelta(minutes=10), 3000)
        secret = tmp_path / "gl.secret"
        secret.write_text(client.secret)
        sources = [{"name": f"gl{i}", "type": "hpe_greenlake", "base_url": sim.url, "workspace_id": ws.id,
                    "client_id": client.id, "client_secret": f"file:{secret}", "lookback": "3h", "page_size": 5,
                    "window": "1h", "rate_limit": 900, "rate_limit_overall": 100000, "interval": "1s", "http": FAST_HTTP}
                   for i in range(6)]
        replicas.start_with_files(3, sources)
        wait_for(replicas.all_hold_leases, "all three replicas to hold GreenLake sources")
        first = len(sim.calls)
        wait_for(lambda: len(sim.calls) - first >= 200, "over two simulator minutes of requests")
        codes = replicas.stop()
    finally:
        sim.stop()
    minutes = Counter(int(call.time // 60) for call in sim.calls)
    print(f"\nquota: {len(sim.calls)} requests, per simulator minute: {sorted(minutes.items())}, "
          f"429s: {sum(1 for c in sim.calls if c.status == 429)}")
    assert max(minutes.values()) <= 100, minutes
    assert codes == [0, 0, 0]


@pytest.mark.slow
def test_carbon_black_queue_is_read_by_one_replica_only(tmp_path, replicas, pg_state_url):
    """Each replica reaches the simulator through its own relay, so the relays tell who read the queue."""
    sim = CarbonBlackCloudSimulator(queue_batch=200, faults=Faults(latency=0.05)).start()
    relays = [Relay(int(sim.url.rsplit(":", 1)[1])) for _ in range(3)]
    try:
        secret = tmp_path / "cb.secret"
        secret.write_text(DEMO_SECRET)
        procs = []
        for i, relay in enumerate(relays):
            table, _ = sim.demo_source(10)
            source = {**table, "name": "cb", "base_url": relay.url, "api_secret": f"file:{secret}", "mode": "queue",
                      "interval": "1s", "http": FAST_HTTP}
            source.pop("lookback")
            sinks = [{"name": "out", "type": "file", "path": str(tmp_path / f"out{i}.ndjson")}]
            procs.append(replicas.start(i, [source], sinks))
        wait_for(lambda: sum(r.queue_reads for r in relays) >= 15, "the queue to be drained and polled")
        codes = replicas.stop()
    finally:
        for relay in relays:
            relay.stop()
        sim.stop()
    reads = [r.queue_reads for r in relays]
    print(f"\ncarbon black queue reads per replica: {reads}")
    assert sorted(reads)[:2] == [0, 0] and max(reads) >= 15, reads
    assert codes == [0, 0, 0]


class Relay:
    """A TCP relay on 127.0.0.1 to ``port`` that counts the queue requests passing through it."""

    def __init__(self, port):
        self.port = port
        self.queue_reads = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src, dst, count):
        tail = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    seen = tail + data
                    self.queue_reads += seen.count(b"/_queue HTTP/1.1") - tail.count(b"/_queue HTTP/1.1")
                    tail = seen[-32:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.closing = True
        self.server.close()
