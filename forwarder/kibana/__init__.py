"""The Kibana saved objects shipped in the package, and their NDJSON form for the import API.

Source form: one pretty JSON file per object, ``objects/<type>/<id>.json``,
with Kibana's JSON-in-a-string attributes (``panelsJSON``, ``optionsJSON``,
``searchSourceJSON`` …) kept as plain JSON so they read and diff well — the
layout Elastic's integration packages use. ``to_ndjson`` encodes those
attributes as strings, the form Kibana's import API expects, one object per line.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from forwarder import jsoncodec

OBJECTS_DIR = files(__name__) / "objects"
# Attributes Kibana stores as JSON text (elastic-package re-encodes the same paths).
JSON_STRING_ATTRIBUTES = (
    ("panelsJSON",),
    ("optionsJSON",),
    ("kibanaSavedObjectMeta", "searchSourceJSON"),
    ("visState",),
    ("uiStateJSON",),
    ("layerListJSON",),
    ("mapStateJSON",),
)
# Import order: what others reference first.
TYPE_ORDER = ("tag", "index-pattern", "search", "dashboard")


def load_objects() -> list[dict[str, Any]]:
    """Every shipped object in source form, in import order."""
    objects = []
    for type_dir in OBJECTS_DIR.iterdir():
        if not type_dir.is_dir():
            continue
        for item in type_dir.iterdir():
            if item.name.endswith(".json"):
                objects.append(json.loads(item.read_text(encoding="utf-8")))
    order = {t: i for i, t in enumerate(TYPE_ORDER)}
    return sorted(objects, key=lambda o: (order.get(o["type"], len(order)), o["id"]))


def encode(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with its JSON-string attributes as strings (already-encoded ones are left alone)."""
    attributes = dict(obj.get("attributes", {}))
    for path in JSON_STRING_ATTRIBUTES:
        parent = attributes
        for key in path[:-1]:
            child = parent.get(key)
            if not isinstance(child, dict):
                break
            parent[key] = child = dict(child)
            parent = child
        else:
            value = parent.get(path[-1])
            if value is not None and not isinstance(value, str):
                parent[path[-1]] = jsoncodec.dumps_str(value)
    return {**obj, "attributes": attributes}


def to_ndjson(objects: list[dict[str, Any]] | None = None) -> bytes:
    """The import file: one encoded object per line."""
    return b"".join(jsoncodec.dumps(encode(o)) + b"\n" for o in (load_objects() if objects is None else objects))


def pretty(obj: dict[str, Any]) -> str:
    """The source-tree form of one object: sorted keys, 4-space indent, final newline."""
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
