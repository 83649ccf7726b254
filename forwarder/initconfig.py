"""``siem-forwarder init``: a commented first configuration, and what is still left to fill in.

The file is built from the sources' and sinks' own option schemas: every required
key is written, with its help text; the optional ones follow as comments with
their defaults. Values the user must supply read ``FILL IN: <what>``; secrets are
``env:NAME`` references. ``todo`` lists both kinds that are still open, which is
what ``check`` prints before it tries anything else.
"""

from __future__ import annotations

import os
from typing import Any

from forwarder import jsoncodec, registry
from forwarder.options import Option

FILL_IN = "FILL IN: "

#: Keys worth writing although the schema does not require them (one of a pair is required).
_ALSO = {"elasticsearch": ("hosts", "api_key"), "hpe_greenlake": ("workspace_id",), "progress_mft": ("region",)}


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (strings, numbers, booleans, lists and flat tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return jsoncodec.dumps_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{jsoncodec.dumps_str(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def table_lines(kind: str, table: dict[str, Any]) -> list[str]:
    """A ``[[kind]]`` table of plain values."""
    return [f"[[{kind}]]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]


def env_name(type_: str, key: str) -> str:
    """The environment variable ``init`` suggests for a secret, e.g. CRUSOE_SECRET_KEY."""
    return f"{type_}_{key}".upper()


def _placeholder(type_: str, key: str, opt: Option) -> Any:
    if opt.kind == "secret":
        return f"env:{env_name(type_, key)}"
    if opt.kind == "path":
        return f"./{type_}-events.ndjson"
    text = FILL_IN + (opt.help or key)
    return [text] if opt.kind == "list" else text


def _block(kind: str, type_: str) -> list[str]:
    cls = registry.load(kind, type_)
    doc = (cls.__doc__ or "").strip().splitlines()
    lines = [f"# {kind} {type_}" + (f": {doc[0]}" if doc else ""), f"[[{kind}]]"]
    lines += [f"name = {toml_value(type_.replace('_', '-'))}", f"type = {toml_value(type_)}"]
    also = _ALSO.get(type_, ())
    for key, opt in cls.OPTIONS.items():
        if opt.required or key in also:
            value = _placeholder(type_, key, opt)
            if opt.help and FILL_IN not in str(value):
                lines.append(f"# {opt.help}")
            lines.append(f"{key} = {toml_value(value)}")
    optional = [(k, o) for k, o in cls.OPTIONS.items() if not o.required and k not in also]
    if optional:
        lines.append("# Optional (defaults shown):")
    for key, opt in optional:
        shown = toml_value(opt.default) if opt.default not in (None, [], {}) else '""' if opt.kind in ("str", "secret", "path") else "..."
        lines.append(f"# {key} = {shown}" + (f"  # {opt.help}" if opt.help else ""))
    return lines


def render(sources: list[str], sinks: list[str]) -> str:
    """The commented configuration for these source and sink types."""
    out = [
        "# siem-forwarder configuration, written by `siem-forwarder init`.",
        "# Replace every FILL IN value and export every env: variable, then run",
        "# `siem-forwarder check -c <this file>`: it lists whatever is still missing.",
        "",
        "[state]",
        'dir = "./state"  # checkpoints, dead letters and outboxes',
        "",
        "[log]",
        'level = "info"',
        'format = "text"  # or "json" (one object per line, with structured fields)',
        '# file = "/var/log/siem-forwarder/forwarder.log"  # reopened after logrotate; or max_bytes/backups',
        "",
        "# [server]",
        '# listen = "127.0.0.1:9464"  # /metrics, /healthz, /readyz',
    ]
    for kind, types in (("source", sources), ("sink", sinks)):
        for type_ in types:
            out += ["", *_block(kind, type_)]
    return "\n".join(out) + "\n"


def secrets_needed(data: dict[str, Any]) -> list[str]:
    """The ``env:`` variables a parsed configuration refers to, in order."""
    return [v[4:] for _, v in _values(data) if isinstance(v, str) and v.startswith("env:")]


def todo(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, what to do) for each FILL IN value and each unset ``env:`` variable."""
    out = []
    for where, value in _values(data):
        if isinstance(value, str) and value.startswith(FILL_IN):
            out.append((where, "fill in " + value[len(FILL_IN):]))
        elif isinstance(value, str) and value.startswith("env:") and value[4:] not in os.environ:
            out.append((where, f"export {value[4:]}=... (or use file:/path/to/secret)"))
    return out


def _values(data: dict[str, Any]) -> list[tuple[str, Any]]:
    found = []
    for kind in ("source", "sink"):
        tables = data.get(kind, [])
        for i, table in enumerate(tables if isinstance(tables, list) else []):
            if not isinstance(table, dict):
                continue
            name = table.get("name")
            where = f'{kind} "{name}"' if isinstance(name, str) else f"{kind}[{i}]"
            for key, value in table.items():
                for member in value if isinstance(value, list) else [value]:
                    found.append((f"{where}.{key}", member))
    return found
