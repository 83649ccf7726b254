"""Shared test fixtures."""

from __future__ import annotations

import socket

import pytest

from forwarder.http import forget_shared_limiters


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
def _fresh_shared_limiters():
    """Each test starts with full rate-limit buckets: a 429 in one test never slows another."""
    forget_shared_limiters()
    yield
    forget_shared_limiters()
