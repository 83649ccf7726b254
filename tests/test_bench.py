"""The benchmarks still run against the engine (they are run by hand and never timed here)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules([str(ROOT / "bench")]) if m.name != "__main__"))
def test_benchmark_module_imports(name: str) -> None:
    assert importlib.import_module(f"bench.{name}").__doc__


def test_engine_benchmark_runs_a_small_pass() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.bench_engine", "300"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("events=300 ")


def test_verdicts_say_how_far_a_figure_is_from_its_target() -> None:
    from bench import verdict

    assert verdict(1.83, 2.0) == "missed by 8%"
    assert verdict(2.0, 2.0) == "met"
    assert verdict(62.0, 47.0, at_most=True) == "missed by 32%"
    assert verdict(-0.01, 0.10, at_most=True) == "met"


def test_the_engine_floor_runs_and_leaves_the_environment_as_it_was() -> None:
    import os

    from bench.bench_engine import _floor

    before = dict(os.environ)
    assert _floor(1000) > 0
    assert dict(os.environ) == before
