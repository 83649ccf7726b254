"""Issue 13 item 6: one process per state directory (a flock the kernel releases on any exit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from forwarder.errors import StateError
from forwarder.statelock import LOCK_FILE, hold_state_dir


def _configs(tmp_path, port):
    """A daemon config with a source (it keeps running and holding the lock) and a source-less one
    on the same state directory."""
    state, out = tmp_path / "state", tmp_path / "out.ndjson"
    head = f'[state]\ndir = "{state}"\n[[sink]]\nname = "f"\ntype = "file"\npath = "{out}"\n'
    daemon = tmp_path / "daemon.toml"
    daemon.write_text(head + f'[[source]]\nname = "c"\ntype = "crusoe"\nbase_url = "http://127.0.0.1:{port}"\n'
                      'organization_id = "01234567-89ab-cdef-0123-456789abcdef"\naccess_key_id = "AK"\n'
                      'secret_key = "env:T_CRUSOE_KEY"\ninterval = "1h"\nhttp = {retries = 0}\n')
    other = tmp_path / "other.toml"
    other.write_text(head)
    return daemon, other


def _cli(*args, **kw):
    env = {**os.environ, "T_CRUSOE_KEY": "a2V5LWtleS1rZXkta2V5"}
    return subprocess.Popen([sys.executable, "-m", "forwarder", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _start_holder(cfg):
    """A real ``run`` daemon, returned once it has said it is running (it takes the lock before that)."""
    holder = _cli("run", "--config", str(cfg))
    for line in holder.stderr:
        if "running 1 sources" in line:
            return holder
    holder.wait()
    pytest.fail(f"the daemon did not start: exit {holder.returncode}")


@pytest.mark.parametrize("command", [
    ("run", "--once"),
    ("state", "reset", "c"),
    ("backfill", "--source", "c", "--from", "2026-01-01", "--to", "2026-01-02", "--no-progress"),
    ("export", "--source", "c", "--from", "2026-01-01", "--to", "2026-01-02", "-o", "x.ndjson"),
])
def test_second_process_on_a_state_directory_exits_1_naming_it_and_the_holder(tmp_path, closed_port, command):
    daemon, _ = _configs(tmp_path, closed_port)
    holder = _start_holder(daemon)
    try:
        second = _cli(*command, "--config", str(daemon), cwd=tmp_path)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{tmp_path / 'state'} is in use by another siem-forwarder (pid {holder.pid})" in err
        assert (tmp_path / "state" / LOCK_FILE).read_text().strip() == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=60)
    assert holder.returncode == 0


def test_a_killed_holder_releases_the_directory(tmp_path, closed_port):
    daemon, other = _configs(tmp_path, closed_port)
    holder = _start_holder(daemon)
    blocked = _cli("run", "--once", "--config", str(other))
    assert blocked.wait(timeout=60) == 1
    holder.kill()  # SIGKILL: no clean-up code runs; the kernel drops the flock
    holder.communicate(timeout=60)
    after = _cli("run", "--once", "--config", str(other))
    _, err = after.communicate(timeout=60)
    assert after.returncode == 0, err


def test_the_lock_is_per_holder_even_within_one_process(tmp_path):
    with hold_state_dir(tmp_path / "new" / "state"):
        assert (tmp_path / "new" / "state" / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(StateError, match=rf"is in use by another siem-forwarder \(pid {os.getpid()}\)"):
            with hold_state_dir(tmp_path / "new" / "state"):
                pass
    with hold_state_dir(tmp_path / "new" / "state"):  # released on leaving the block
        pass


def test_read_only_commands_do_not_need_the_lock(tmp_path, capsys):
    from forwarder.cli import main

    _, other = _configs(tmp_path, 9)
    with hold_state_dir(tmp_path / "state"):
        assert main(["state", "show", "--config", str(other)]) == 0
        assert main(["run", "--once", "--config", str(other)]) == 1
    assert "is in use by another siem-forwarder" in capsys.readouterr().err
