"""Shared test fixtures."""

from __future__ import annotations

import socket

import pytest


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
