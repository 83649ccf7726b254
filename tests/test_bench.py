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
