"""A simulator never imports the code it tests: nothing from forwarder.sources or forwarder.auth.

A simulator that verified requests with the client's own signing, filter tables or
enums would agree with the client by construction and prove nothing. Two checks:
the source of every simulator module, read with ``ast`` (any import statement,
at any depth, and ``import_module``/``__import__`` with a literal name), and a fresh
interpreter importing each simulator module, which must end with neither package
in ``sys.modules`` (this also catches an indirect import through a helper).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import forwarder.simulators

PACKAGE = "forwarder.simulators"
SIMULATORS = Path(forwarder.simulators.__file__).parent
FORBIDDEN = ("forwarder.sources", "forwarder.auth")
MODULES = sorted(f"{PACKAGE}.{m.name}" for m in pkgutil.iter_modules([str(SIMULATORS)]))


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module an ``ImportFrom`` names, relative imports resolved against ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def forbidden_imports(source: str, package: str = PACKAGE) -> list[str]:
    """The forbidden modules ``source`` (a module of ``package``) imports, wherever the import sits."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found.extend(name for name in names if _forbidden(name))
    return found


@pytest.mark.parametrize(
    "snippet, bad",
    [
        ("from forwarder.auth.crusoe_hmac import signature", True),
        ("from forwarder.sources.hpe_greenlake import FILTER_FIELDS", True),
        ("from forwarder import sources", True),
        ("from forwarder import jsoncodec, auth as a", True),
        ("import forwarder.auth.jwt_assertion", True),
        ("from ..sources.crusoe import FILTERS", True),
        ("from .. import auth", True),
        ("def f():\n    from forwarder.sources import progress_mft\n", True),
        ("import importlib\nimportlib.import_module('forwarder.sources.crusoe')", True),
        ("__import__('forwarder.auth')", True),
        ("from forwarder import jsoncodec", False),
        ("from forwarder.simulators.base import rng", False),
        ("from . import base", False),
        ("import forwarder.sourcesafe", False),
    ],
)
def test_the_import_check_recognises_every_form(snippet, bad):
    assert bool(forbidden_imports(snippet)) is bad


def test_there_are_simulators_to_check():
    assert {f"{PACKAGE}.{name}" for name in ("base", "crusoe", "hpe_greenlake", "progress_mft", "carbon_black_cloud")} <= set(MODULES)


@pytest.mark.parametrize("path", sorted(SIMULATORS.glob("*.py")), ids=lambda p: p.name)
def test_no_simulator_module_imports_sources_or_auth(path):
    assert forbidden_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_simulator_loads_no_source_or_auth_module(module):
    probe = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('forwarder.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert module in loaded  # the probe did import it
    assert [name for name in loaded if _forbidden(name)] == []
