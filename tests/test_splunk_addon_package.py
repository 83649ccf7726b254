"""The built Splunk add-on, exercised as splunkd would: no Splunk server needed.

The package is built once per session (``packaging/build.py``: ``ucc-gen build``,
reused when its inputs did not change, shared by parallel workers through a
lock). Its generated input scripts are then run as subprocesses with ``python
-S`` and only the add-on's ``lib/`` on the path — like Splunk's own Python,
which has neither orjson nor this project's virtualenv — against the vendor
simulators and the splunkd stub (``tests/servers/splunkd.py``) for accounts,
settings, secrets and KV store checkpoints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from forwarder import registry
from forwarder.splunk_addon import APP, COLLECTION, INPUTS, SETTINGS_CONF
from forwarder.timeutil import parse_time
from tests.addon_build import build
from tests.servers.splunkd import Splunkd

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_CONFIG = json.loads((ROOT / "splunk_app" / "globalConfig.json").read_text())
SERVICES = {s["name"]: s for s in GLOBAL_CONFIG["pages"]["inputs"]["services"]}
TABS = {t["name"]: t for t in GLOBAL_CONFIG["pages"]["configuration"]["tabs"] if "name" in t}


@pytest.fixture(scope="session")
def addon(tmp_path_factory) -> Path:
    """A private copy of the built add-on (built at most once per set of inputs).

    Copied under the build lock, so another worker rebuilding after a source
    change cannot pull the files from under this one's tests.
    """
    try:
        built = build.ensure_built()
    except build.BuildError as exc:
        pytest.fail(f"add-on build failed: {exc}")
    copy = tmp_path_factory.mktemp("addon") / built.name
    with build.build_lock():
        shutil.copytree(build.OUTPUT / built.name, copy)
    return copy


def run_script(addon: Path, scheme: str, *args: str, stdin: str = "", env: dict | None = None, site: bool = False):
    """Run ``bin/<scheme>.py`` as splunkd does (``-S``: no site-packages unless ``site``)."""
    cmd = [sys.executable, *([] if site else ["-S"]), str(addon / "bin" / f"{scheme}.py"), *args]
    environ = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, env=environ, cwd=addon / "bin")


def xml_params(params: dict[str, str]) -> str:
    from xml.sax.saxutils import escape, quoteattr

    return "".join(f"<param name={quoteattr(k)}>{escape(v)}</param>" for k, v in params.items())


def input_document(stub: Splunkd, checkpoint_dir: Path, stanza: str, params: dict[str, str]) -> str:
    from xml.sax.saxutils import quoteattr

    return (
        f"<input><server_host>sh1</server_host><server_uri>{stub.uri}</server_uri>"
        f"<session_key>{stub.session_key}</session_key><checkpoint_dir>{checkpoint_dir}</checkpoint_dir>"
        f"<configuration><stanza name={quoteattr(stanza)}>{xml_params(params)}</stanza></configuration></input>"
    )


def validation_document(stub: Splunkd, checkpoint_dir: Path, name: str, params: dict[str, str]) -> str:
    from xml.sax.saxutils import quoteattr

    return (
        f"<items><server_host>sh1</server_host><server_uri>{stub.uri}</server_uri>"
        f"<session_key>{stub.session_key}</session_key><checkpoint_dir>{checkpoint_dir}</checkpoint_dir>"
        f"<item name={quoteattr(name)}>{xml_params(params)}</item></items>"
    )


def splunk_setup(sim, monkeypatch, stub: Splunkd, spec, account_name: str = "acct") -> dict[str, str]:
    """Put the simulator's demo source into the stub as an account (+ input params); return the params."""
    table, env = sim.demo_source(20)
    tab = TABS[spec.account_tab]
    account_fields = {e["field"]: e for e in tab["entity"] if e["field"] != "name"}
    input_fields = {e["field"] for e in SERVICES[spec.scheme]["entity"]}
    account, params = {}, {"account": account_name, "index": "audit", "interval": "300", "start": "2h", "lag": "0s"}
    for key, value in table.items():
        if isinstance(value, str) and value.startswith("env:"):
            value = env[value[4:]]
        if key in account_fields:
            account[key] = str(value)
        elif key in input_fields and key not in ("name", "lag"):
            params[key] = str(value)
    encrypted = tuple(k for k, e in account_fields.items() if e.get("encrypted"))
    stub.add_stanza(spec.account_conf, account_name, account, encrypted)
    return params


@pytest.fixture
def stub():
    server = Splunkd()
    server.kv[COLLECTION] = {}
    server.add_stanza(SETTINGS_CONF, "logging", {"loglevel": "DEBUG"})
    with server:
        yield server


def events_of(stdout: str) -> list[ET.Element]:
    if not stdout.strip():
        return []
    return ET.fromstring(stdout).findall("event")


def simulator(vendor: str):
    return registry.load("simulator", vendor)(seed=7)


# -- scheme and validation ----------------------------------------------------
@pytest.mark.parametrize("scheme", sorted(INPUTS))
def test_scheme_names_every_argument(addon, scheme):
    proc = run_script(addon, scheme, "--scheme")
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(proc.stdout)
    assert root.tag == "scheme"
    assert root.findtext("streaming_mode") == "xml"
    assert root.findtext("use_external_validation") == "true"
    args = {a.get("name"): a for a in root.iter("arg")}
    # splunkd supplies interval and index itself; every other field of the input page is an argument
    expected = {e["field"] for e in SERVICES[scheme]["entity"]} - {"interval", "index"}
    assert set(args) == expected
    for name in ("name", "account"):
        assert args[name].findtext("required_on_create") == "true"


@pytest.mark.parametrize("scheme", ["crusoe_audit", "carbon_black_cloud_audit"])
def test_validate_arguments_rejects_bad_input_readably(addon, stub, scheme, tmp_path, monkeypatch):
    spec = INPUTS[scheme]
    with simulator(spec.source_type) as sim:
        params = splunk_setup(sim, monkeypatch, stub, spec)
        ok = run_script(addon, scheme, "--validate-arguments", stdin=validation_document(stub, tmp_path, "good", params))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.strip() == ""
        bad_cases = [
            ({**params, "account": "nosuch"}, "there is no"),
            ({**params, "start": "yesterday"}, "start"),
            ({**params, "lag": "soon"}, "lag"),
        ]
        if scheme == "carbon_black_cloud_audit":
            bad_cases.append(({**params, "mode": "queue", "query": "description:login"}, "query"))
            bad_cases.append(({**params, "criteria": "[1, 2]"}, "criteria"))
        for bad, needle in bad_cases:
            proc = run_script(addon, scheme, "--validate-arguments", stdin=validation_document(stub, tmp_path, "bad", bad))
            assert proc.returncode == 1, (bad, proc.stdout, proc.stderr)
            error = ET.fromstring(proc.stdout)
            assert error.tag == "error"
            message = error.findtext("message")
            assert needle in message and "Traceback" not in message and len(message.splitlines()) == 1
            assert "Traceback" not in proc.stderr


def test_validate_arguments_with_splunkd_down_is_one_line(addon, tmp_path):
    doc = (
        "<items><server_host>sh1</server_host><server_uri>http://127.0.0.1:9</server_uri><session_key>k</session_key>"
        f"<checkpoint_dir>{tmp_path}</checkpoint_dir><item name=\"x\"><param name=\"account\">a</param></item></items>"
    )
    proc = run_script(addon, "crusoe_audit", "--validate-arguments", stdin=doc)
    assert proc.returncode == 1
    message = ET.fromstring(proc.stdout).findtext("message")
    assert "cannot read" in message and "splunkd" in message
    assert "Traceback" not in proc.stderr


# -- runs ---------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["crusoe_audit", "hpe_greenlake_audit", "carbon_black_cloud_audit"])
def test_run_streams_events_then_resumes_from_the_kv_checkpoint(addon, stub, scheme, tmp_path, monkeypatch):
    spec = INPUTS[scheme]
    cls = registry.load("source", spec.source_type)
    with simulator(spec.source_type) as sim:
        params = splunk_setup(sim, monkeypatch, stub, spec)
        stanza = f"{scheme}://prod"
        doc = input_document(stub, tmp_path, stanza, params)
        first = run_script(addon, scheme, stdin=doc)
        assert first.returncode == 0, first.stderr
        events = events_of(first.stdout)
        assert events, first.stderr
        sourcetype = {"crusoe": "crusoe:cloud:audit", "hpe_greenlake": "hpe:greenlake:audit", "carbon_black_cloud": "vmware:cbc:audit"}[cls.VENDOR]
        for ev in events:
            assert ev.get("stanza") == stanza
            assert ev.findtext("sourcetype") == sourcetype
            assert ev.findtext("index") == "audit"
            body = json.loads(ev.findtext("data"))
            assert body["vendor"] == cls.VENDOR
            # <time> is the event's own time (epoch seconds, ms precision), as HEC gets it
            assert float(ev.findtext("time")) == pytest.approx(parse_time(body["timestamp"]).timestamp(), abs=0.001)
        ids = [json.loads(ev.findtext("data"))["id"] for ev in events]
        assert len(ids) == len(set(ids))
        key = f"{cls.VENDOR}:prod"
        assert key in stub.kv[COLLECTION], stub.kv[COLLECTION].keys()
        assert json.loads(stub.kv[COLLECTION][key]["state"])["cursor"]
        # secrets never reach the output or the logs
        secret_fields = [e["field"] for e in TABS[spec.account_tab]["entity"] if e.get("encrypted")]
        secrets = [v for (realm, user), pw in stub.passwords.items() for v in json.loads(pw).values()]
        assert secret_fields and secrets
        for value in secrets:
            assert value not in first.stdout and value not in first.stderr

        second = run_script(addon, scheme, stdin=doc)
        assert second.returncode == 0, second.stderr
        again = [json.loads(ev.findtext("data"))["id"] for ev in events_of(second.stdout)]
        assert not set(again) & set(ids)


def test_run_falls_back_to_the_checkpoint_dir_when_the_kv_store_is_down(addon, stub, tmp_path, monkeypatch):
    spec = INPUTS["crusoe_audit"]
    with simulator("crusoe") as sim:
        params = splunk_setup(sim, monkeypatch, stub, spec)
        stub.kv_down = True
        doc = input_document(stub, tmp_path, "crusoe_audit://prod", params)
        first = run_script(addon, "crusoe_audit", stdin=doc)
        assert first.returncode == 0, first.stderr
        assert events_of(first.stdout)
        assert list((tmp_path / "prod" / "checkpoints").glob("*.json"))
        # The KV store is back but empty: the newer file checkpoint still wins.
        stub.kv_down = False
        second = run_script(addon, "crusoe_audit", stdin=doc)
        assert second.returncode == 0, second.stderr
        assert events_of(second.stdout) == []


def test_run_with_a_wrong_secret_fails_with_one_error_line(addon, stub, tmp_path, monkeypatch):
    spec = INPUTS["crusoe_audit"]
    with simulator("crusoe") as sim:
        params = splunk_setup(sim, monkeypatch, stub, spec)
        stub.add_stanza(spec.account_conf, "acct", {**stub.confs[spec.account_conf]["acct"], "secret_key": "d3Jvbmctc2VjcmV0LWtleS12YWx1ZQ=="}, ("secret_key",))
        proc = run_script(addon, "crusoe_audit", stdin=input_document(stub, tmp_path, "crusoe_audit://prod", params))
    assert proc.returncode == 1
    assert events_of(proc.stdout) == []
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "crusoe_audit://prod" in errors[0]
    assert "Traceback" not in proc.stderr
    assert "d3Jvbmctc2VjcmV0LWtleS12YWx1ZQ==" not in proc.stderr
    assert f"{spec.source_type}:prod" not in stub.kv[COLLECTION]


def test_progress_mft_without_cryptography_says_what_is_missing(addon, stub, tmp_path, monkeypatch):
    spec = INPUTS["progress_mft_audit"]
    with simulator("progress_mft") as sim:
        params = splunk_setup(sim, monkeypatch, stub, spec)
        doc = validation_document(stub, tmp_path, "mft", params)
        bare = run_script(addon, "progress_mft_audit", "--validate-arguments", stdin=doc)
        assert bare.returncode == 1
        assert "cryptography" in ET.fromstring(bare.stdout).findtext("message")
        # With a Python that has cryptography (Splunk's own does), the same input runs.
        site = run_script(addon, "progress_mft_audit", stdin=input_document(stub, tmp_path, "progress_mft_audit://mft", params), site=True)
        assert site.returncode == 0, site.stderr
        events = events_of(site.stdout)
        assert events and all(ev.findtext("sourcetype") == "progress:mft:audit" for ev in events)


# -- the package ----------------------------------------------------------------
def test_package_has_no_compiled_files_and_declares_python_313(addon):
    assert build.compiled_files(addon) == []
    inputs_conf = (addon / "default" / "inputs.conf").read_text()
    for scheme in INPUTS:
        assert f"[{scheme}]" in inputs_conf
    assert inputs_conf.count("python.required = 3.13") == len(INPUTS)
    restmap = (addon / "default" / "restmap.conf").read_text()
    assert "python.required = 3.13" in restmap
    assert (addon / "default" / "app.conf").read_text().count("check_for_updates = false") == 1
    assert (addon / "lib" / "forwarder" / "splunk_addon.py").exists()
    assert not (addon / "lib" / "forwarder" / "simulators").exists()
    assert APP == addon.name


def test_every_bundled_and_toolchain_package_is_pinned(addon):
    """packaging/constraints.txt names the exact version of everything the build installs."""
    pins = {}
    for line in (ROOT / "packaging" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    sites = [addon / "lib", next((build.VENV / "lib").glob("python*/site-packages"))]
    for site in sites:
        for dist in site.glob("*.dist-info"):
            name, version = dist.name[: -len(".dist-info")].rsplit("-", 1)
            key = re.sub(r"[-_.]+", "-", name).lower()
            if site == sites[1] and key in ("pip", "setuptools"):
                continue  # the virtualenv's own installer
            assert pins.get(key) == version, f"{dist.name} in {site.name}: pin it in packaging/constraints.txt"


def test_run_logs_through_solnlibs_rotating_logger_under_splunk_home(addon, stub, tmp_path, monkeypatch):
    spec = INPUTS["crusoe_audit"]
    home = tmp_path / "splunk"
    (home / "var" / "log" / "splunk").mkdir(parents=True)
    with simulator("crusoe") as sim:
        params = splunk_setup(sim, monkeypatch, stub, spec)
        secret = stub.confs[spec.account_conf]["acct"]["secret_key"]
        doc = input_document(stub, tmp_path / "ckpt", "crusoe_audit://prod", params)
        proc = run_script(addon, "crusoe_audit", stdin=doc, env={"SPLUNK_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    log = home / "var" / "log" / "splunk" / "ta_siem_forwarder_prod.log"
    text = log.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} log_level=INFO pid=\d+ .* \| source prod: \d+ events", text, re.M), text
    assert secret not in text
