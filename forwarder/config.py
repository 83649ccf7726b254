"""Load and validate the TOML configuration file.

Layout::

    [state]            dir = "./state", ledger_retention = "400d", url = "postgresql://..." (several replicas), password, lease
    [log]              level = "info", format = "text" | "json", file = "...", max_bytes, backups
    [server]           listen = "127.0.0.1:9464"  (off by default: /metrics, /healthz, /readyz)
    [[source]]         name, type, interval, lag, lookback, enabled, [source.http], vendor keys
    [[sink]]           name, type, batch_events, batch_bytes, batch_age, [sink.http], target keys
    [kibana]           url, api_key | user + password, space, [kibana.http]  (for `setup kibana`)

Every error is a ``ConfigError`` naming the key, e.g.
``config: source "cb".org_key: is required``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from forwarder import registry
from forwarder.errors import ConfigError
from forwarder.http import HttpSettings
from forwarder.options import Option, address_problem, document_problem, validate_table
from forwarder.server import parse_listen


PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


def _proxy_problem(value: str) -> str | None:
    """A proxy URL with a host and port one can connect to (user:password@ is allowed here)."""
    if urlsplit(value).scheme not in PROXY_SCHEMES:
        return f"must be a proxy URL ({', '.join(s + '://' for s in PROXY_SCHEMES)})"
    return address_problem(value)


HTTP_OPTIONS: dict[str, Option] = {
    "timeout": Option("duration", 30.0, "seconds to wait for a response", minimum=0.1),
    "verify": Option("bool", True, "verify TLS certificates"),
    "ca_bundle": Option("file", None, "PEM file of CA certificates to trust"),
    "client_cert": Option("file", None, "PEM client certificate"),
    "client_key": Option("file", None, "PEM key of the client certificate"),
    "proxy": Option("str", None, "http(s) proxy URL; HTTPS_PROXY/NO_PROXY are honoured too", check=_proxy_problem),
    "retries": Option("int", 5, "retries after the first attempt", minimum=0, maximum=50),
    "backoff_base": Option("duration", 0.5, "first backoff step"),
    "backoff_max": Option("duration", 30.0, "longest backoff step"),
    "max_response_mb": Option("int", 64, "largest response body read into memory (MiB, after decompression)", minimum=1,
                              maximum=4096),
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

def _check_state_url(value: str) -> str | None:
    if not value.startswith(("postgresql://", "postgres://")):
        return "must be a postgresql:// URL"
    if _URL_PASSWORD.match(value) or "password=" in value.lower():
        return "must not carry a password: set password = \"env:NAME\" or \"file:PATH\", or use PGPASSWORD/PGPASSFILE"
    return None


_URL_PASSWORD = re.compile(r"^[a-z]+://[^/@?#]*:[^/@?#]*@")

STATE_OPTIONS = {
    "dir": Option("dir", "./state", "where checkpoints (without url), dead letters and spools live"),
    "url": Option("str", None, "PostgreSQL URL: checkpoints and leases shared by several replicas (libpq options such as sslmode pass through)", check=_check_state_url),
    "password": Option("secret", None, "PostgreSQL password as env:NAME or file:PATH (or use the libpq environment)"),
    "lease": Option("duration", 30.0, "lease period: a dead replica's sources move within about this long", minimum=1, maximum=3600),
    "ledger_retention": Option("duration", 400 * 86400.0, "keep coverage-ledger windows this long (see `coverage`)", minimum=86400),
}
LOG_OPTIONS = {
    "level": Option("str", "info", choices=("debug", "info", "warning", "error")),
    "format": Option("str", "text", choices=("text", "json")),
    "file": Option("path", None, "log file (default: standard error); reopened when logrotate moves it"),
    "max_bytes": Option("int", 0, "rotate the log file itself at this size (0: leave rotation to logrotate)", minimum=0),
    "backups": Option("int", 5, "rotated log files to keep (with max_bytes)", minimum=0, maximum=1000),
}

KIBANA_OPTIONS = {
    "url": Option("url", None, "Kibana URL for `setup kibana`, e.g. https://kibana.example.internal:5601"),
    "api_key": Option("secret", None, "Kibana/Elasticsearch API key (encoded form) as env:NAME or file:PATH"),
    "user": Option("str", None, "user name for HTTP Basic auth (with password)"),
    "password": Option("secret", None, "its password as env:NAME or file:PATH"),
    "space": Option("str", None, "Kibana space id (default: the default space)"),
    "http": Option("dict", {}),
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
    ledger_retention: float = 400 * 86400.0
    state: dict[str, Any] = field(default_factory=dict)
    kibana: dict[str, Any] = field(default_factory=dict)
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
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError, bad UTF-8, a huge integer, deep nesting
        why = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0][:200]
        raise ConfigError("", f"{path} is not valid TOML: {why}") from None
    config = parse_config(data, base=path.parent)
    config.path = path
    return config


def parse_config(data: dict[str, Any], base: Path | None = None) -> Config:
    """Validate an already parsed TOML document. ``base`` is the config file's directory: a
    relative state directory lies there (and is checked there, not in the current directory)."""
    problem = document_problem(data)
    if problem:
        raise ConfigError(*problem)
    unknown = sorted(set(data) - {"source", "sink", "state", "log", "kibana", "server"})
    if unknown:
        raise ConfigError(unknown[0], "unknown top-level key (known: [[source]], [[sink]], [state], [log], [kibana], [server])")
    state_table = data.get("state", {})
    if base is not None and isinstance(state_table, dict):
        relative = state_table.get("dir", STATE_OPTIONS["dir"].default)
        if isinstance(relative, str) and relative and not Path(relative).is_absolute():
            state_table = {**state_table, "dir": os.path.abspath(base / relative)}
    state = validate_table(state_table, STATE_OPTIONS, "state")
    log = validate_table(data.get("log", {}), LOG_OPTIONS, "log")
    kibana = validate_table(data.get("kibana", {}), KIBANA_OPTIONS, "kibana")
    kibana["http"] = HttpSettings.from_config(validate_table(kibana["http"], HTTP_OPTIONS, "kibana.http"))
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
    return Config(sources=sources, sinks=sinks, state_dir=Path(state["dir"]), log=log, ledger_retention=state["ledger_retention"], state=state,
                  kibana=kibana, server=server)


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
