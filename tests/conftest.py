"""Shared test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def state_dir(tmp_path):
    """A fresh state directory."""
    d = tmp_path / "state"
    d.mkdir()
    return d
