"""Load and validate the TOML configuration file.

Layout::

    [state]            dir = "./state"
    [log]              level = "info", format = "text" | "json", file = "...", max_bytes, backups
    [server]           listen = "127.0.0.1:9464"  (off by default: /metrics, /healthz, /readyz)
    [[source]]         name, type, interval, lag, lookback, enabled, [source.http], vendor keys
    [[sink]]           name, type, batch_events, batch_bytes, batch_age, [sink.http], target keys

Every error is a ``ConfigError`` naming the key, e.g.
``config: source "cb".org_key: is required``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forwarder import registry
from forwarder.errors import ConfigError
from forwarder.http import HttpSettings
from forwarder.options import Option, validate_table
from forwarder.server import parse_listen

HTTP_OPTIONS: dict[str, Option] = {
    "timeout": Option("duration", 30.0, "seconds to wait for a response", minimum=0.1),
    "verify": Option("bool", True, "verify TLS certificates"),
    "ca_bundle": Option("path", None, "PEM file of CA certificates to trust"),
    "client_cert": Option("path", None, "PEM client certificate"),
    "client_key": Option("path", None, "PEM key of the client certificate"),
    "proxy": Option("str", None, "http(s) proxy URL; HTTPS_PROXY/NO_PROXY are honoured too"),
    "retries": Option("int", 5, "retries after the first attempt", minimum=0, maximum=50),
    "backoff_base": Option("duration", 0.5, "first backoff step"),
    "backoff_max": Option("duration", 30.0, "longest backoff step"),
}

SOURCE_COMMON: dict[str, Option] = {
    "name": Option("str", help="unique name; the checkpoint key"),
    "type": Option("str", help="vendor source type"),
    "enabled": Option("bool", True),
    "interval": Option("duration", 300.0, "seconds between passes in daemon mode", minimum=1),
    "lag": Option("duration", 120.0, "stay this far behind now: vendor logs arrive late"),
    "lookback": Option("duration", 86400.0, "how far back the first run starts"),
    "http": Option("dict", {}),
}

SINK_COMMON: dict[str, Option] = {
    "name": Option("str", help="unique name"),
    "type": Option("str", help="sink type"),
    "batch_events": Option("int", 1000, "most events per delivery", minimum=1),
    "batch_age": Option("duration", 0.0, "wait up to this long to fill a batch"),
    "outbox": Option("bool", False, "accept events into a durable on-disk outbox and deliver from there"),
    "outbox_max_bytes": Option("int", 1 << 30, "outbox size at which sources wait", minimum=1 << 20),
    "http": Option("dict", {}),
}

STATE_OPTIONS = {"dir": Option("path", "./state", "where checkpoints, dead letters and spools live")}
LOG_OPTIONS = {
    "level": Option("str", "info", choices=("debug", "info", "warning", "error")),
    "format": Option("str", "text", choices=("text", "json")),
    "file": Option("path", None, "log file (default: standard error); reopened when logrotate moves it"),
    "max_bytes": Option("int", 0, "rotate the log file itself at this size (0: leave rotation to logrotate)", minimum=0),
    "backups": Option("int", 5, "rotated log files to keep (with max_bytes)", minimum=0, maximum=1000),
}

SERVER_OPTIONS = {"listen": Option("str", None, "host:port of the /metrics, /healthz and /readyz listener (off by default)")}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class SourceConfig:
    """A validated ``[[source]]`` table."""

    name: str
    type: str
    interval: float
    lag: float
    lookback: float
    enabled: bool
    http: HttpSettings
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SinkConfig:
    """A validated ``[[sink]]`` table."""

    name: str
    type: str
    batch_events: int
    batch_age: float
    http: HttpSettings
    options: dict[str, Any] = field(default_factory=dict)
    outbox: bool = False
    outbox_max_bytes: int = 1 << 30


@dataclass
class Config:
    """The whole validated configuration."""

    sources: list[SourceConfig]
    sinks: list[SinkConfig]
    state_dir: Path
    log: dict[str, Any]
    path: Path | None = None
    server: dict[str, Any] = field(default_factory=lambda: {"listen": None})

    def source(self, name: str) -> SourceConfig:
        """The source named ``name`` (ConfigError if there is none)."""
        for src in self.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError("--source", f"no source named {name!r} (configured: {known})")


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("", f"file {path} not found") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    config = parse_config(data)
    config.path = path
    base = path.parent
    if not config.state_dir.is_absolute():
        config.state_dir = (base / config.state_dir).resolve()
    return config


def parse_config(data: dict[str, Any]) -> Config:
    """Validate an already parsed TOML document."""
    unknown = sorted(set(data) - {"source", "sink", "state", "log", "server"})
    if unknown:
        raise ConfigError(unknown[0], "unknown top-level key (known: [[source]], [[sink]], [state], [log], [server])")
    state = validate_table(data.get("state", {}), STATE_OPTIONS, "state")
    log = validate_table(data.get("log", {}), LOG_OPTIONS, "log")
    server = validate_table(data.get("server", {}), SERVER_OPTIONS, "server")
    if server["listen"] is not None:
        parse_listen(server["listen"])
    sources = [_source(t, i) for i, t in enumerate(_array(data, "source"))]
    sinks = [_sink(t, i) for i, t in enumerate(_array(data, "sink"))]
    for kind, items in (("source", sources), ("sink", sinks)):
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                raise ConfigError(f'{kind} "{item.name}".name', "is used twice; names must be unique")
            seen.add(item.name)
    return Config(sources=sources, sinks=sinks, state_dir=Path(state["dir"]), log=log, server=server)


def _array(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(key, f"must be written as [[{key}]] tables")
    return value


def _split(table: Any, common: dict[str, Option], kind: str, index: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{kind}[{index}]", "must be a table")
    name = table.get("name")
    where = f'{kind} "{name}"' if isinstance(name, str) and name else f"{kind}[{index}]"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}.name", "is required: 1-64 letters, digits, '.', '_' or '-'")
    if "type" not in table:
        raise ConfigError(f"{where}.type", "is required")
    cls = registry.load(kind, table["type"]) if isinstance(table["type"], str) else None
    if cls is None:
        raise ConfigError(f"{where}.type", "must be a string")
    schema = {**common, **cls.OPTIONS}
    values = validate_table(table, schema, where)
    own = {k: values[k] for k in cls.OPTIONS}
    common_values = {k: values[k] for k in common}
    common_values["http"] = HttpSettings.from_config(validate_table(values["http"], HTTP_OPTIONS, f"{where}.http"))
    validate_extra = getattr(cls, "validate_options", None)
    if validate_extra is not None:
        validate_extra(own, where)
    return where, common_values, own


def _source(table: Any, index: int) -> SourceConfig:
    _, common, own = _split(table, SOURCE_COMMON, "source", index)
    return SourceConfig(options=own, **common)


def _sink(table: Any, index: int) -> SinkConfig:
    _, common, own = _split(table, SINK_COMMON, "sink", index)
    return SinkConfig(options=own, **common)
