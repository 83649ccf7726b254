"""Shared test fixtures."""

from __future__ import annotations

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
    never slows another, and a secret of one test never masks words in another's output."""
    forget_shared_limiters()
    forget_registered()
    yield
    forget_shared_limiters()
    forget_registered()
