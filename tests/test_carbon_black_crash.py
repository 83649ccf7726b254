"""SIGKILL the real CLI right after a destructive queue read, restart it, lose nothing.

``FORWARDER_TEST_KILL_AFTER_SPOOL=N`` (see ``forwarder/spool.py``) makes the
process kill itself right after its N-th spool fsync, i.e. after the vendor has
cleared a batch and before it is parsed or delivered.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from forwarder import jsoncodec
from forwarder.simulators.carbon_black_cloud import DEMO_API_ID, CarbonBlackCloudSimulator
from forwarder.sources.carbon_black_cloud import record_key

CLI = Path(sys.executable).with_name("siem-forwarder")


def _run(config, env, kill_after=None):
    env = dict(env)
    if kill_after is not None:
        env["FORWARDER_TEST_KILL_AFTER_SPOOL"] = str(kill_after)
    command = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "forwarder"]
    return subprocess.run([*command, "run", "--once", "--config", str(config)], env=env, capture_output=True, timeout=120)


def test_sigkill_right_after_a_queue_read_then_restart_loses_nothing(tmp_path):
    with CarbonBlackCloudSimulator(seed=11, queue_batch=400) as sim:
        table, env = sim.demo_source(10)
        table.update(mode="queue")
        del table["lookback"]
        lines = ["[state]", f'dir = "{tmp_path / "state"}"', "[[source]]"]
        lines += [f'{key} = "{value}"' for key, value in table.items()]
        lines += ["[source.http]", "backoff_base = 0.01",
                  "[[sink]]", 'name = "out"', 'type = "file"', f'path = "{tmp_path / "out.ndjson"}"', "batch_events = 300"]
        config = tmp_path / "forwarder.toml"
        config.write_text("\n".join(lines) + "\n")
        env = {**os.environ, **env}
        spool = tmp_path / "state" / "sources" / table["name"] / "spool"

        killed = _run(config, env, kill_after=3)
        assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
        handed = sim.handed_out[DEMO_API_ID]
        assert len(handed) == 3 * 400  # three batches are gone from the vendor's queue…
        assert list(spool.glob("*.body"))  # …and at least the last one is only in the spool

        finished = _run(config, env)
        assert finished.returncode == 0, finished.stderr.decode()
        assert len(handed) > 3 * 400  # the restart replayed the spool, then read the rest of the queue

    delivered = [jsoncodec.loads(line) for line in (tmp_path / "out.ndjson").read_bytes().splitlines()]
    ids = {doc["event"]["id"] for doc in delivered}
    assert ids == {record_key(r, sim.org_key) for r in handed}  # every record the queue handed out, nothing else
    assert list(spool.iterdir()) == []
