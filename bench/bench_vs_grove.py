"""Side by side with HashiCorp Grove: events per CPU-second, wall time and peak RSS.

Both tools run as whole processes, alternately, against local HTTPS mock APIs that
serve the same records (the Crusoe simulator's, generated from one seed) in pages of
the same size, each mock in its own process:

- siem-forwarder reads them through its Crusoe source (HMAC-signed requests);
- Grove 2.2.0 reads them through its ``github_audit_log`` connector (the mock answers
  GitHub's audit-log paging: ``Link: <...>; rel="next"``; GitHub caps pages at 100, the
  mock serves ``PAGE`` records per page to both tools so neither pays more requests).

Targets, each tool into its own of the same kind:
- ``file``: forwarder file sink (NDJSON, ECS) vs Grove's ``local_file`` output;
- ``hec``: forwarder Splunk HEC sink (gzip on) into the HEC test server vs Grove's
  ``remote_http`` output into a plain HTTP endpoint;
- ``es``: forwarder Elasticsearch sink into the Elasticsearch test server vs Grove's
  ``remote_http`` output.

Grove is installed from PyPI into ``build/grove-venv`` on first use. CPU seconds and
peak RSS come from ``wait4`` on each tool's process (the mocks and targets are not
counted). Usage: ``python -m bench vs-grove``; ``BENCH_RECORDS`` (100000), ``BENCH_ROUNDS`` (3)
and ``BENCH_TARGETS`` (file,hec,es) change what is run; ``BENCH_PIN=CPU`` runs both
tools on that one CPU and the mocks and targets on the others; ``BENCH_PYSPY=DIR``
records the forwarder's runs with py-spy (``pip install py-spy``) into DIR instead of timing them.
"""

from __future__ import annotations

import compileall
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import verdict

ROOT = Path(__file__).resolve().parent.parent
GROVE_VENV = ROOT / "build" / "grove-venv"
GROVE_VERSION = "2.2.0"
PAGE = 1000
RECORDS = 100_000
ROUNDS = 3
TARGETS = ("file", "hec", "es")
#: Issue 17's targets: the least forwarder/Grove ratio per CPU-second, per target.
GOALS = {"file": 2.0, "hec": 1.6, "es": 1.6}


def _grove() -> Path:
    """The ``grove`` command, installing Grove into its own venv when missing."""
    exe = GROVE_VENV / "bin" / "grove"
    if not exe.exists():
        print(f"  installing grove=={GROVE_VERSION} into {GROVE_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(GROVE_VENV)], check=True)
        subprocess.run([str(GROVE_VENV / "bin" / "pip"), "install", "-q", f"grove=={GROVE_VERSION}"], check=True)
    return exe


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m bench.vs_grove_servers ARGS``; its first line is its URL.

    With ``BENCH_PIN=CPU`` the servers keep off that CPU, so the tools measured there do not
    share it with the mocks and targets (whose CPU is not counted).
    """
    pin = os.environ.get("BENCH_PIN")
    others = (os.sched_getaffinity(0) - {int(pin)}) if pin else set()
    preexec = (lambda: os.sched_setaffinity(0, others)) if others else None
    proc = subprocess.Popen([sys.executable, "-m", "bench.vs_grove_servers", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=preexec)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


#: Runs a tool and writes its own (status, CPU seconds, peak RSS KiB). A process forked from the
#: benchmark would report the benchmark's RSS as its floor (Linux keeps the peak across exec, and
#: the fork starts with the parent's pages), so each tool is spawned by this small launcher instead.
_LAUNCHER = """
import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{status} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss}")
"""


def _measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``cmd`` to completion; (CPU seconds, wall seconds, peak RSS in KiB), both of ``cmd`` alone.

    Its stderr goes to a file, not a pipe: a tool that logs a line per page (Grove
    does) would fill a pipe nobody reads until it exits, and block on it.
    """
    pin = os.environ.get("BENCH_PIN")
    preexec = (lambda: os.sched_setaffinity(0, {int(pin)})) if pin else None
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as report:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, report.name, *cmd], env=env, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=err, preexec_fn=preexec, check=True)
        wall = time.perf_counter() - began
        status, cpu, rss = report.read().split()
        code = os.waitstatus_to_exitcode(int(status))
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{cmd[0]} failed ({code}): {err.read().decode(errors='replace')[-2000:]}")
    return float(cpu), wall, int(rss)


def _profiled(cmd: list[str], target: str, round_no: int) -> list[str]:
    """``cmd`` under py-spy when ``BENCH_PYSPY`` names a directory (raw stacks per target and round;
    the figures of such a run include py-spy's own CPU and mean nothing)."""
    where = os.environ.get("BENCH_PYSPY")
    if not where:
        return cmd
    spy = Path(sys.executable).with_name("py-spy")
    return [str(spy), "record", "-r", "250", "-f", "raw", "--gil", "-o", f"{where}/{target}-{round_no}.txt", "--", *cmd]


def _forwarder_config(tmp: Path, round_no: int, source_url: str, cert: Path, target: str, target_url: str) -> Path:
    state = tmp / f"fw-state-{target}-{round_no}"
    sink = {
        "file": f'type = "file"\npath = "{tmp}/fw-{target}-{round_no}.ndjson"\nmax_bytes = 4294967296',
        "hec": f'type = "splunk_hec"\nurl = ["{target_url}"]\ntoken = "env:BENCH_HEC_TOKEN"\ngzip = true',
        "es": f'type = "elasticsearch"\nhosts = ["{target_url}"]\napi_key = "env:BENCH_ES_KEY"',
    }[target]
    path = tmp / f"fw-{target}-{round_no}.toml"
    path.write_text(
        f'[state]\ndir = "{state}"\n\n'
        f'[[source]]\nname = "crusoe-bench"\ntype = "crusoe"\nbase_url = "{source_url}"\n'
        f'organization_id = "{os.environ["BENCH_CRUSOE_ORG"]}"\naccess_key_id = "{os.environ["BENCH_CRUSOE_KEY_ID"]}"\n'
        f'secret_key = "env:BENCH_CRUSOE_SECRET"\nlookback = "2d"\nlag = 0\nlimit = {PAGE}\nwindow = "6h"\n'
        f'[source.http]\nca_bundle = "{cert}"\n\n'
        f'[[sink]]\nname = "{target}"\n{sink}\n'
    )
    return path


def _grove_env(tmp: Path, round_no: int, target: str, grove_api: str, cert: Path, target_url: str) -> dict[str, str]:
    confdir = tmp / f"grove-conf-{target}-{round_no}"
    outdir = tmp / f"grove-out-{target}-{round_no}"
    confdir.mkdir()
    outdir.mkdir()
    (confdir / "bench.json").write_text(json.dumps({
        "name": "bench", "identity": "acme", "connector": "github_audit_log", "key": "bench-token",
        "fqdn": grove_api.removeprefix("https://"),
    }))
    env = {**os.environ, "GROVE_CONFIG_LOCAL_FILE_PATH": str(confdir), "GROVE_CACHE_HANDLER": "local_memory",
           "REQUESTS_CA_BUNDLE": str(cert), "GROVE_WORKER_COUNT": "1"}
    if target == "file":
        env |= {"GROVE_OUTPUT_HANDLER": "local_file", "GROVE_OUTPUT_LOCAL_FILE_PATH": str(outdir)}
    else:
        env |= {"GROVE_OUTPUT_HANDLER": "remote_http", "GROVE_OUTPUT_REMOTE_HTTP_URL": target_url + "/ingest"}
    return env


def _delivered(tmp: Path, round_no: int, target: str) -> tuple[int, int]:
    """Records each tool wrote in the file round (a benchmark of lost records would prove nothing)."""
    with open(tmp / f"fw-{target}-{round_no}.ndjson", "rb") as fh:
        forwarder = sum(1 for _ in fh)
    grove = sum(gzip.decompress(p.read_bytes()).count(b"\n") + 1 for p in (tmp / f"grove-out-{target}-{round_no}").rglob("*") if p.is_file())
    return forwarder, grove


def _line(name: str, records: int, runs: list[tuple[float, float, int]]) -> tuple[str, float]:
    cpu = statistics.median(r[0] for r in runs)
    wall = statistics.median(r[1] for r in runs)
    rate = records / cpu
    return f"  {name:<15} {rate:>10,.0f} ev/CPU-s  {records / wall:>10,.0f} ev/s wall  {_peak(runs):6.1f} MB peak RSS  (median of {len(runs)})", rate


def _peak(runs: list[tuple[float, float, int]]) -> float:
    return max(r[2] for r in runs) / 1024


def main() -> None:
    records = int(os.environ.get("BENCH_RECORDS", RECORDS))
    rounds = int(os.environ.get("BENCH_ROUNDS", ROUNDS))
    targets = os.environ.get("BENCH_TARGETS", ",".join(TARGETS)).split(",")
    grove = _grove()
    # An installed package has its bytecode compiled (pip does it; Grove's venv has it); an editable
    # checkout may not (PYTHONDONTWRITEBYTECODE), and would pay the compiler on every run.
    compileall.compile_dir(ROOT / "forwarder", quiet=1)
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(tmpname)
        from tests.servers.tls import self_signed

        cert, _ = self_signed(tmp, "bench-mock")
        crusoe, crusoe_url = _start(["crusoe", str(records), str(PAGE), tmpname])
        github, github_url = _start(["github", str(records), str(PAGE), tmpname])
        os.environ.update(json.loads((tmp / "crusoe-env.json").read_text()))
        servers = [crusoe, github]
        try:
            for target in targets:
                fw_target = grove_target = ""
                if target != "file":
                    kind = {"hec": "hec", "es": "es"}[target]
                    proc, fw_target = _start([kind])
                    sink_proc, grove_target = _start(["http-sink"])
                    servers += [proc, sink_proc]
                fw_runs: list[tuple[float, float, int]] = []
                grove_runs: list[tuple[float, float, int]] = []
                for r in range(rounds):
                    order = ("grove", "forwarder") if r % 2 == 0 else ("forwarder", "grove")
                    for tool in order:
                        if tool == "grove":
                            env = _grove_env(tmp, r, target, github_url, cert, grove_target)
                            grove_runs.append(_measure([str(grove)], env))
                        else:
                            cfg = _forwarder_config(tmp, r, crusoe_url, cert, target, fw_target)
                            fw_runs.append(_measure(_profiled([sys.executable, "-m", "forwarder", "run", "--once", "--config", str(cfg)], target, r),
                                                    {**os.environ, "BENCH_HEC_TOKEN": "00000000-0000-0000-0000-000000000001",
                                                     "BENCH_ES_KEY": "bench:bench"}))
                    if target == "file":
                        counts = _delivered(tmp, r, target)
                        if counts != (records, records):
                            raise SystemExit(f"round {r}: forwarder wrote {counts[0]:,}, grove {counts[1]:,} of {records:,} records")
                print(f"target {target}: {records:,} records, pages of {PAGE}, {rounds} alternating rounds, load {os.getloadavg()[0]:.1f}")
                fw_text, fw_rate = _line("siem-forwarder", records, fw_runs)
                grove_text, grove_rate = _line(f"grove {GROVE_VERSION}", records, grove_runs)
                print(fw_text)
                print(grove_text)
                ratio = fw_rate / grove_rate
                print(f"  ratio forwarder/grove per CPU-second: {ratio:.2f}x "
                      f"(target >= {GOALS[target]:.1f}x: {verdict(ratio, GOALS[target])}); "
                      f"peak RSS {_peak(fw_runs):.1f} MB (target <= Grove's {_peak(grove_runs):.1f}: "
                      f"{verdict(_peak(fw_runs), _peak(grove_runs), at_most=True)})", flush=True)
        finally:
            for proc in servers:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
