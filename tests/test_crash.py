"""End-to-end crash safety: SIGKILL the CLI at random points, restart, lose nothing.

The forwarder runs as a real process (`python -m forwarder run --once`) against
the Crusoe simulator into the file sink. It is killed at 24 seeded-random moments
(during start-up, mid-page, mid-write, mid-commit...), then run to completion.
Every simulator record must be in the output, and every re-delivered copy must
carry the same id and the same original record.
"""

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from forwarder import jsoncodec
from forwarder.simulators.base import Faults
from forwarder.simulators.crusoe import CrusoeSimulator
from tests.cliconfig import start_once, write_config

KILLS = 24
RECORDS = 3000


def _config(tmp_path, sim):
    table, env = sim.demo_source(RECORDS)
    cfg = write_config(tmp_path, {**table, "lookback": "8h", "limit": 25, "window": "30m"}, batch_events=120)
    return cfg, {**os.environ, **env}


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing(tmp_path):
    rnd = random.Random(20261122)
    # Latency makes one whole run last longer than all the kill delays together, so every
    # kill lands in a run that still has work to do.
    with CrusoeSimulator(seed=5, records=RECORDS, faults=Faults(latency=0.12)) as sim:
        cfg, env = _config(tmp_path, sim)
        finished_early = killed = 0
        for _ in range(KILLS):
            proc = start_once(cfg, env)
            time.sleep(rnd.uniform(0.05, 0.9))  # where it dies is random; nothing is asserted about time
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            else:
                finished_early += 1
            proc.wait()
            if finished_early == 0 and proc.returncode not in (0, -signal.SIGKILL):
                pytest.fail(f"run failed: {proc.stderr.read().decode()}")
            proc.stderr.close()
        assert killed >= 20, f"only {killed} runs were still going when the kill came"
        sim.faults.latency = 0.0
        final = subprocess.run([sys.executable, "-m", "forwarder", "run", "--once", "--config", str(cfg)],
                               env=env, capture_output=True, text=True)
        assert final.returncode == 0, final.stderr

        expected = tmp_path / "expected.ndjson"
        start, end = sim.end - dt.timedelta(hours=7), sim.end + dt.timedelta(minutes=1)
        export = subprocess.run([sys.executable, "-m", "forwarder", "export", "--config", str(cfg), "--source", "crusoe-demo",
                                 "--from", start.isoformat(), "--to", end.isoformat(), "--output", str(expected)],
                                env=env, capture_output=True, text=True)
        assert export.returncode == 0, export.stderr

    want = {jsoncodec.loads(l)["event"]["id"] for l in expected.read_bytes().splitlines()}
    assert len(want) == RECORDS

    copies = defaultdict(set)
    for line in (tmp_path / "out.ndjson").read_bytes().splitlines():
        doc = jsoncodec.loads(line)  # every line parses: no torn writes survive
        copies[doc["event"]["id"]].add(doc["event"]["original"])
    assert set(copies) == want, f"missing {len(want - set(copies))}, unexpected {len(set(copies) - want)}"
    assert all(len(originals) == 1 for originals in copies.values()), "a replay carried a different record under the same id"
