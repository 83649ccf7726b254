"""Config files and CLI processes for the end-to-end tests: one source into one file sink."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from forwarder import jsoncodec


def write_config(tmp_path: Path, source: dict[str, Any], batch_events: int | None = None, **http: Any) -> Path:
    """``forwarder.toml`` in ``tmp_path``: state there, ``source``, and a file sink ``out`` writing ``out.ndjson``."""
    lines = ["[state]", f'dir = "{tmp_path / "state"}"', "[[source]]"]
    lines += [f"{key} = {jsoncodec.dumps_str(value)}" for key, value in source.items() if key != "http"]
    lines += ["[source.http]"] + [f"{key} = {jsoncodec.dumps_str(value)}" for key, value in {"backoff_base": 0.01, **http}.items()]
    lines += ["[[sink]]", 'name = "out"', 'type = "file"', f'path = "{tmp_path / "out.ndjson"}"']
    if batch_events is not None:
        lines.append(f"batch_events = {batch_events}")
    config = tmp_path / "forwarder.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def start_once(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``run --once`` as a real process (stderr piped, for the caller to read or close)."""
    return subprocess.Popen([sys.executable, "-m", "forwarder", "run", "--once", "--config", str(config)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
