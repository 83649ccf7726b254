"""Operations packaging: Dockerfile (hadolint), systemd unit (systemd-analyze), Kubernetes manifests
(kubernetes-validate), and the wheel's contents."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from forwarder.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
UNIT = ROOT / "packaging" / "systemd" / "siem-forwarder.service"
K8S = ROOT / "packaging" / "kubernetes"


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is missing in CI (.ci/run and the dev extra install it)")
    pytest.skip(f"{name} is not installed here (pip install -e '.[dev]' / apt-get install systemd); CI runs this test")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)


# -- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    done = run(tool("hadolint"), "--no-color", "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    assert run(tool("hadolint"), "--no-color", str(bad)).returncode != 0


def test_dockerfile_runs_as_a_service():
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2  # build stage + slim runtime
    assert re.search(r"^FROM python:3\.\d+-slim\s*$", text, re.M)
    assert re.search(r"^USER 10001$", text, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert "http://127.0.0.1:9464/healthz" in text and "HEALTHCHECK" in text
    assert '"--listen", "0.0.0.0:9464"' in text
    assert not re.search(r"^(ENV|ARG)\s+\S*(SECRET|TOKEN|PASSWORD|KEY)", text, re.M | re.I)  # no secrets baked in


# -- systemd ------------------------------------------------------------------------------


def test_systemd_unit_verifies(tmp_path):
    analyze = tool("systemd-analyze")
    unit = tmp_path / UNIT.name
    # verify checks that ExecStart exists: point it at this environment's entry point
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/siem-forwarder", str(BIN / "siem-forwarder")))
    done = run(analyze, "verify", str(unit), cwd=tmp_path)
    assert done.returncode == 0 and UNIT.name not in done.stderr, done.stderr
    security = run(analyze, "security", "--offline=yes", str(unit), cwd=tmp_path)
    exposure = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout + security.stderr)
    assert exposure and float(exposure.group(1)) <= 2.0, security.stdout[-2000:]


def test_systemd_unit_hardening():
    text = UNIT.read_text()
    for line in ("DynamicUser=yes", "StateDirectory=siem-forwarder", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line


def test_systemd_analyze_does_catch_a_broken_unit(tmp_path):
    analyze = tool("systemd-analyze")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/siem-forwarder", "/nonexistent/siem-forwarder"))
    assert run(analyze, "verify", str(unit), cwd=tmp_path).returncode != 0


# -- Kubernetes ---------------------------------------------------------------------------


def test_kubernetes_manifests_validate_against_the_schemas():
    files = sorted(str(p) for p in K8S.glob("*.yaml"))
    assert len(files) >= 4
    done = run(tool("kubernetes-validate"), "--strict", *files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_validate_does_catch_a_bad_manifest(tmp_path):
    bad = tmp_path / "bad.yaml"
    docs = yaml.safe_load((K8S / "statefulset.yaml").read_text())
    docs["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    bad.write_text(yaml.safe_dump(docs))
    assert run(tool("kubernetes-validate"), "--strict", str(bad)).returncode != 0


def test_kubernetes_pieces_fit_together(monkeypatch):
    sts = yaml.safe_load((K8S / "statefulset.yaml").read_text())
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"][0] == {"name": "metrics", "containerPort": 9464, "protocol": "TCP"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/var/lib/siem-forwarder", "/etc/siem-forwarder"}
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    secret = yaml.safe_load((K8S / "secret.yaml").read_text())
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    # The ConfigMap's config is valid once the Secret's variables are in the environment.
    for name in secret["stringData"]:
        monkeypatch.setenv(name, "c2VjcmV0LWZvci10ZXN0cw==")
    cm = yaml.safe_load((K8S / "configmap.yaml").read_text())
    config = parse_config(tomllib.loads(cm["data"]["forwarder.toml"]))
    assert str(config.state_dir) == "/var/lib/siem-forwarder"
    service = yaml.safe_load((K8S / "service.yaml").read_text())
    assert service["spec"]["ports"][0]["name"] == "metrics"


# -- the wheel ----------------------------------------------------------------------------


@pytest.mark.slow
def test_wheel_carries_pipelines_dashboards_and_license(tmp_path):
    done = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("siem_forwarder-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split("/")[0] for n in names if ".data/" in n)
    for conf in ("forwarder-http.conf", "forwarder-file.conf", "pipelines.yml"):
        assert f"{data}/data/share/siem-forwarder/logstash/{conf}" in names
    shipped = {n for n in names if n.startswith("forwarder/kibana/objects/")}
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "forwarder" / "kibana" / "objects").rglob("*.json")}
    assert shipped == on_disk and on_disk
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata and "Requires-Dist: prometheus_client" in metadata
