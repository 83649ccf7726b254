"""Build the Splunk add-on package and check it with AppInspect: ``python packaging/build.py``.

Steps (each one fails loudly, with one line saying what to fix):

1. Toolchain: ``build/packaging-venv`` with the pinned ``packaging/requirements.txt``
   (UCC and AppInspect), created or refreshed when the pins change. Every pip
   install of the build (the add-on's ``lib/`` too) is constrained by
   ``packaging/constraints.txt``, the exact version of every package, so a fresh
   machine installs what was tested.
2. Stage ``splunk_app/`` in ``build/splunk_app/`` and copy the engine (``forwarder/``,
   without the CLI, demo and simulators) into its ``package/lib/``: the add-on runs
   the same engine as the command line.
3. ``ucc-gen build`` (pip installs ``package/lib/requirements.txt`` into ``lib/``).
   The staged ``globalConfig.json`` must come out unchanged (UCC migrates old
   schemas in place: commit the migrated file), and the output must hold no
   compiled file (ELF/Mach-O/PE binaries, ``.so``/``.pyd``, byte code): the
   package runs on Splunk's Python 3.13 on any CPU.
4. ``ucc-gen package`` → ``dist/TA_siem_forwarder-<version>.tar.gz``.
5. ``splunk-appinspect inspect … --mode precert --included-tags cloud --ci
   --skip-trusted-libraries-update`` (works offline) → ``dist/appinspect.json``;
   any failure, future failure or error fails the build.

A build is skipped when ``build/splunk_app/output`` was made from the same
inputs (a hash of every file that goes into it); ``--force`` rebuilds. A lock
file serializes concurrent builds (parallel test workers share one build).

Options: ``--skip-appinspect`` (build and package only), ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
APP = "TA_siem_forwarder"
SOURCE = ROOT / "splunk_app"
BUILD = ROOT / "build"
VENV = BUILD / "packaging-venv"
STAGE = BUILD / "splunk_app"
OUTPUT = STAGE / "output"
DIST = ROOT / "dist"
TOOL_REQUIREMENTS = ROOT / "packaging" / "requirements.txt"
CONSTRAINTS = ROOT / "packaging" / "constraints.txt"
#: pip 26 breaks UCC's library install; this is the version UCC's build switches to.
PIP_VERSION = "25.1.1"
#: ucc-gen's own pip flags, which ``--pip-custom-flag`` replaces (so they are repeated with ours).
UCC_PIP_FLAGS = "--no-compile --prefer-binary --ignore-installed"
#: The lib/ install runs on the toolchain's Python, but the package runs on Splunk's 3.13: splunk-sdk 3.x
#: (the version AppInspect asks for) declares Python >= 3.13 and is pure Python, so that marker is not ours to obey.
LIB_PIP_FLAGS = "--ignore-requires-python"
#: Installed without its dependencies, only for the CIM data-model JSON the tests check against.
DATA_MODELS = "pytest-splunk-addon==7.0.5"
#: Engine parts the add-on never runs (command line, demo, vendor simulators).
ENGINE_EXCLUDE = ("__pycache__", "*.pyc", "simulators", "demo.py", "cli.py", "__main__.py")
#: AppInspect result kinds that fail the build.
BLOCKING = ("failure", "future_failure", "error")
_BINARY_MAGIC = (b"\x7fELF", b"MZ", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
_COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".pyc", ".pyo", ".exe", ".a", ".o")


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def version() -> str:
    """The project version (``forwarder.__version__``), which is also the add-on's."""
    text = (ROOT / "forwarder" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    if not match:
        raise BuildError("forwarder/__init__.py has no __version__")
    return match.group(1)


def _bin(name: str) -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / name


def _run(cmd: list[str], what: str, log: Path | None = None, ok: tuple[int, ...] = (0,)) -> int:
    """Run a tool; on failure (its exit code, or an ``ERROR:`` line: ucc-gen exits 0 after some) raise with the tail of its output."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log is not None:
        log.write_text(proc.stdout, encoding="utf-8")
    if proc.returncode not in ok or any(line.startswith("ERROR:") for line in proc.stdout.splitlines()):
        tail = "\n".join(line for line in proc.stdout.splitlines() if "is ignored" not in line)[-3000:]
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.returncode


def toolchain() -> None:
    """Create or refresh the toolchain virtualenv when the pinned requirements change."""
    stamp = VENV / "requirements.sha256"
    want = hashlib.sha256(TOOL_REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes() + DATA_MODELS.encode()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == want and _bin("ucc-gen").exists():
        return
    print(f"toolchain: installing {TOOL_REQUIREMENTS.relative_to(ROOT)} into {VENV.relative_to(ROOT)}", flush=True)
    if not _bin("python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    _run([_bin("python"), "-m", "pip", "install", "-q", "-r", TOOL_REQUIREMENTS, "-c", CONSTRAINTS], "toolchain install")
    _run([_bin("python"), "-m", "pip", "install", "-q", "--no-deps", DATA_MODELS, "-c", CONSTRAINTS], "toolchain install")
    stamp.write_text(want)


def input_hash() -> str:
    """SHA-256 over every file that goes into the build (names and contents)."""
    digest = hashlib.sha256()
    files = [*SOURCE.rglob("*"), *(ROOT / "forwarder").rglob("*.py"), *(ROOT / "forwarder").rglob("*.json"),
             Path(__file__), TOOL_REQUIREMENTS, CONSTRAINTS]
    for path in sorted(p for p in files if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage() -> Path:
    """Copy the UCC project and the engine into ``build/splunk_app``; return the staged package dir."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    shutil.copytree(SOURCE, STAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "output"))
    shutil.copytree(ROOT / "forwarder", STAGE / "package" / "lib" / "forwarder", ignore=shutil.ignore_patterns(*ENGINE_EXCLUDE))
    return STAGE / "package"


def compiled_files(root: Path) -> list[str]:
    """Files under ``root`` that are platform-specific binaries or byte code."""
    found = []
    for path in root.rglob("*"):
        if path.is_dir():
            if path.name == "__pycache__":
                found.append(str(path.relative_to(root)))
            continue
        if path.suffix.lower() in _COMPILED_SUFFIXES:
            found.append(str(path.relative_to(root)))
            continue
        with open(path, "rb") as fh:
            head = fh.read(4)
        if any(head.startswith(magic) for magic in _BINARY_MAGIC) and path.suffix.lower() not in (".png", ".jpg", ".gif", ".ico"):
            found.append(str(path.relative_to(root)))
    return sorted(found)


def ucc_build(package: Path) -> Path:
    """``ucc-gen build`` of the staged package; return the add-on directory."""
    config = STAGE / "globalConfig.json"
    before = config.read_bytes()
    _run(
        [_bin("ucc-gen"), "build", "--source", package, "--config", config, "--ta-version", version(),
         "-o", OUTPUT, "--python-binary-name", _bin("python"), "--pip-version", PIP_VERSION,
         "--pip-custom-flag", f"{UCC_PIP_FLAGS} {LIB_PIP_FLAGS} --constraint {shlex.quote(str(CONSTRAINTS))}", "--overwrite"],
        "ucc-gen build", log=BUILD / "ucc-build.log",
    )
    if config.read_bytes() != before:
        raise BuildError("ucc-gen migrated globalConfig.json to a newer schema: copy build/splunk_app/globalConfig.json over splunk_app/globalConfig.json and commit it")
    addon = OUTPUT / APP
    strip_accelerators(addon / "lib")
    _refuse_compiled(addon)
    return addon


def strip_accelerators(lib: Path) -> list[str]:
    """Delete compiled twins of pure-Python modules (mypyc builds, e.g. charset_normalizer's ``md.py``)
    and pip's console-script wrappers.

    Such packages import the ``.py`` module when the compiled one is absent, so
    the package keeps working on any CPU. Returns what was deleted.
    """
    removed = []
    scripts = lib / "bin"  # console-script wrappers of pip --target, pointing at the build's Python
    if scripts.is_dir():
        shutil.rmtree(scripts)
        removed.append("bin/")
    for path in sorted(lib.rglob("*")):
        if path.suffix not in (".so", ".pyd") or not path.is_file():
            continue
        module = path.name.split(".", 1)[0]
        if (path.parent / f"{module}.py").exists() or "__mypyc" in module:
            path.unlink()
            removed.append(str(path.relative_to(lib)))
    return removed


def _refuse_compiled(addon: Path) -> None:
    binaries = compiled_files(addon)
    if binaries:
        shown = ", ".join(binaries[:10]) + (f" (+{len(binaries) - 10} more)" if len(binaries) > 10 else "")
        raise BuildError(f"the add-on must not ship compiled files (Splunk's Python 3.13 on any CPU); add their packages to package/lib/exclude.txt or drop them: {shown}")


def ucc_package(addon: Path) -> Path:
    """``ucc-gen package`` into ``dist/``; return the archive."""
    _refuse_compiled(addon)
    DIST.mkdir(exist_ok=True)
    archive = DIST / f"{APP}-{version()}.tar.gz"
    archive.unlink(missing_ok=True)
    _run([_bin("ucc-gen"), "package", "--path", addon, "-o", DIST], "ucc-gen package", log=BUILD / "ucc-package.log")
    if not archive.exists():
        raise BuildError(f"ucc-gen package did not write {archive.relative_to(ROOT)}")
    return archive


def appinspect(archive: Path) -> dict[str, int]:
    """Run AppInspect (precert, cloud tag) on ``archive``; return its summary, raising on anything blocking."""
    report = DIST / "appinspect.json"
    report.unlink(missing_ok=True)
    code = _run(
        [_bin("splunk-appinspect"), "inspect", archive, "--mode", "precert", "--included-tags", "cloud",
         "--data-format", "json", "--output-file", report, "--ci", "--skip-trusted-libraries-update"],
        "splunk-appinspect", log=DIST / "appinspect.log", ok=(0, 101, 103, 104),
    )
    data = json.loads(report.read_text(encoding="utf-8"))
    summary = data["summary"]
    blocking = {kind: summary.get(kind, 0) for kind in BLOCKING if summary.get(kind, 0)}
    if code in (101, 104) or blocking:
        names = [
            f"{check['result']}: {check['name']}"
            for rep in data.get("reports", []) for group in rep.get("groups", []) for check in group.get("checks", [])
            if check.get("result") in BLOCKING
        ]
        raise BuildError(f"AppInspect found {blocking or code}: {'; '.join(names)} (details: dist/appinspect.log)")
    return summary


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """Serialize builds between processes (parallel test workers)."""
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / ".splunk_app.lock", "w") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no concurrent builds there
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_built(force: bool = False) -> Path:
    """The built add-on directory, building it when its inputs changed since the last build."""
    with build_lock():
        stamp = OUTPUT / "input.sha256"
        want = input_hash()
        addon = OUTPUT / APP
        if not force and stamp.exists() and stamp.read_text().strip() == want and addon.is_dir():
            return addon
        toolchain()
        if OUTPUT.exists():
            shutil.rmtree(OUTPUT)
        addon = ucc_build(stage())
        stamp.write_text(want)
        return addon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Splunk add-on package and run AppInspect on it.")
    parser.add_argument("--skip-appinspect", action="store_true", help="build and package only")
    parser.add_argument("--force", action="store_true", help="rebuild even when nothing changed")
    args = parser.parse_args(argv)
    try:
        addon = ensure_built(args.force)
        with build_lock():
            archive = ucc_package(addon)
            print(f"package: {archive.relative_to(ROOT)} ({archive.stat().st_size // 1024} KiB)", flush=True)
            if not args.skip_appinspect:
                summary = appinspect(archive)
                shown = ", ".join(f"{k} {v}" for k, v in summary.items())
                print(f"appinspect (precert, cloud): {shown}; report dist/appinspect.json", flush=True)
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
