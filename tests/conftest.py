"""Shared test fixtures."""

from __future__ import annotations

import gc
import itertools
import os
import socket

import pytest

from forwarder.http import forget_shared_limiters
from forwarder.secrets import forget_registered


@pytest.fixture
def state_dir(tmp_path):
    """A fresh state directory."""
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Each test starts with full rate-limit buckets and no remembered secrets: a 429 in one test
    never slows another, and a secret of one test never masks words in another's output; a test
    that ran ``siem-forwarder run`` in-process leaves no frozen objects or raised gc threshold."""
    forget_shared_limiters()
    forget_registered()
    threshold = gc.get_threshold()
    yield
    forget_shared_limiters()
    forget_registered()
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server per test session (per xdist worker); tests get their own databases."""
    from tests.servers.postgres import PostgresServer, binaries

    bindir = binaries()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: .ci/run must install postgresql")
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql to run these tests)")
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


_databases = itertools.count(1)


@pytest.fixture
def pg_url(postgres_server):
    """The URL of a new empty database, for this test only (the schema is not created yet)."""
    return postgres_server.create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
def pg_state_url(pg_url):
    """A new database with the forwarder's schema, as `siem-forwarder setup state` creates it."""
    from forwarder.state_postgres import migrate

    migrate(pg_url)
    return pg_url
