"""Offline validation of the shipped Kibana saved objects (forwarder/kibana/objects/).

The package-spec rules Elastic applies to integration packages (file name =
id, no dangling references, by-value panels only, a filter on every dashboard)
plus ours: the filter is on ``data_stream.dataset`` with our dataset names,
every Lens panel is internally consistent, and every field a panel uses exists
in our Elasticsearch index template with a type that can do what the panel asks.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from forwarder import registry
from forwarder.ecs import dataset
from forwarder.event import AuditEvent
from forwarder.kibana import JSON_STRING_ATTRIBUTES, OBJECTS_DIR, encode, load_objects, pretty, to_ndjson
from forwarder.kibana.generate import DATA_VIEW_ID, build
from tests.simulated import simulated_events

OBJECTS = load_objects()
BY_KEY = {(o["type"], o["id"]): o for o in OBJECTS}
DASHBOARDS = [o for o in OBJECTS if o["type"] == "dashboard"]
VENDOR_SOURCES = sorted({registry.load("source", name).VENDOR for name in registry.SOURCES})


def lens_panels(dash: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any], str, dict[str, Any]]]:
    """(panel, lens attributes, layer id, layer) for every panel of a dashboard."""
    for panel in dash["attributes"]["panelsJSON"]:
        attrs = panel["embeddableConfig"]["attributes"]
        for layer_id, layer in attrs["state"]["datasourceStates"]["formBased"]["layers"].items():
            yield panel, attrs, layer_id, layer


def sample_dataset(vendor: str) -> str:
    return dataset(AuditEvent.build(vendor=vendor, product="audit", raw={}, timestamp="2026-01-01T00:00:00Z"))


def test_file_names_match_ids_and_ids_are_unique():
    files = sorted(Path(str(OBJECTS_DIR)).glob("*/*.json"))
    assert len(files) == len(OBJECTS) == len(BY_KEY) == len({o["id"] for o in OBJECTS})
    for path in files:
        obj = json.loads(path.read_text(encoding="utf-8"))
        assert (path.parent.name, path.stem) == (obj["type"], obj["id"]), path


def test_files_are_exactly_what_the_generator_writes():
    """Ids, layout and content are stable: run `python -m forwarder.kibana.generate` after editing it."""
    generated = {(o["type"], o["id"]): o for o in build()}
    assert set(generated) == set(BY_KEY)
    for key, obj in generated.items():
        path = Path(str(OBJECTS_DIR)) / key[0] / f"{key[1]}.json"
        assert path.read_text(encoding="utf-8") == pretty(obj), f"{path} is out of date"


def test_every_reference_resolves():
    for obj in OBJECTS:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in BY_KEY, f"{obj['id']}: dangling reference {ref}"


def test_panels_are_by_value_lens_and_their_references_are_mirrored():
    for dash in DASHBOARDS:
        refs = {r["name"]: r for r in dash["references"]}
        assert not {r["type"] for r in dash["references"]} & {"lens", "visualization", "map"}, dash["id"]
        for panel in dash["attributes"]["panelsJSON"]:
            assert panel["type"] == "lens" and "panelRefName" not in panel, f"{dash['id']}: {panel['title']} is by reference"
            assert panel["gridData"]["i"] == panel["panelIndex"]
            assert panel["gridData"]["x"] + panel["gridData"]["w"] <= 48
            for inner in panel["embeddableConfig"]["attributes"]["references"]:
                mirrored = refs.get(f"{panel['panelIndex']}:{inner['name']}")
                assert mirrored == {**inner, "name": f"{panel['panelIndex']}:{inner['name']}"}, panel["title"]
        assert len({p["panelIndex"] for p in dash["attributes"]["panelsJSON"]}) == len(dash["attributes"]["panelsJSON"])


def test_panels_do_not_overlap():
    for dash in DASHBOARDS:
        cells: set[tuple[int, int]] = set()
        for panel in dash["attributes"]["panelsJSON"]:
            g = panel["gridData"]
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & area, f"{dash['id']}: {panel['title']} overlaps another panel"
            cells |= area


def test_lens_state_is_consistent():
    for dash in DASHBOARDS:
        for panel, attrs, layer_id, layer in lens_panels(dash):
            where = f"{dash['id']}: {panel['title']}"
            assert attrs["references"] == [{"type": "index-pattern", "id": DATA_VIEW_ID,
                                             "name": f"indexpattern-datasource-layer-{layer_id}"}], where
            assert sorted(layer["columnOrder"]) == sorted(layer["columns"]), where
            bucketed = [layer["columns"][c]["isBucketed"] for c in layer["columnOrder"]]
            assert bucketed == sorted(bucketed, reverse=True), f"{where}: buckets come before metrics"
            ids = set(layer["columns"])
            for column in layer["columns"].values():
                order = column.get("params", {}).get("orderBy", {})
                assert order.get("type") != "column" or order["columnId"] in ids, where
            vis = attrs["state"]["visualization"]
            used = set(re.findall(r'"([0-9a-f-]{36})"', json.dumps(vis))) - {layer_id}
            assert used and used <= ids, f"{where}: visualization names unknown columns"
            assert layer_id in json.dumps(vis), where
            assert attrs["state"]["query"]["language"] == "kuery"


def test_every_dashboard_filters_on_our_datasets():
    vendor_dashboards = {}
    for dash in DASHBOARDS:
        search = dash["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
        (flt,) = search["filter"]
        meta = flt["meta"]
        assert meta["key"] == "data_stream.dataset" and not meta["negate"] and not meta["disabled"], dash["id"]
        values = [meta["params"]["query"]] if meta["type"] == "phrase" else meta["params"]
        assert {r["name"]: r["id"] for r in dash["references"]}[meta["indexRefName"]] == DATA_VIEW_ID
        if len(values) == 1:
            vendor_dashboards[values[0]] = dash["id"]
        else:
            assert sorted(values) == sorted(sample_dataset(v) for v in VENDOR_SOURCES), "overview covers every vendor"
    assert sorted(vendor_dashboards) == sorted(sample_dataset(v) for v in VENDOR_SOURCES), "one dashboard per vendor"


def test_data_view_covers_every_data_stream():
    view = BY_KEY[("index-pattern", DATA_VIEW_ID)]["attributes"]
    assert view["timeFieldName"] == "@timestamp"
    patterns = view["title"].split(",")
    for vendor in VENDOR_SOURCES:
        for index in (f"logs-{sample_dataset(vendor)}-default", f"forwarder-{vendor}.audit-default-2026.01.01"):
            assert any(fnmatch.fnmatchcase(index, p) for p in patterns), index
    assert not any(fnmatch.fnmatchcase("logs-carbon_black_cloud.audit-default", p) for p in patterns), "not Elastic's dataset"


def test_ndjson_encodes_json_attributes_as_strings():
    lines = to_ndjson().splitlines()
    assert len(lines) == len(OBJECTS) and len(b"\n".join(lines)) < 2_000_000
    for line, source in zip(lines, OBJECTS):
        obj = json.loads(line)
        for path in JSON_STRING_ATTRIBUTES:
            value: Any = obj["attributes"]
            original: Any = source["attributes"]
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
                original = original.get(key) if isinstance(original, dict) else None
            if original is not None:
                assert isinstance(value, str) and json.loads(value) == original
    assert encode(json.loads(lines[-1])) == json.loads(lines[-1]), "encoding twice changes nothing"


# -- fields against the Elasticsearch index template ----------------------------------------------

_KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")
AGGREGATABLE = {"keyword", "constant_keyword", "ip", "date", "date_nanos", "long", "integer", "short", "byte",
                "double", "float", "half_float", "scaled_float", "unsigned_long", "boolean", "wildcard"}
LENS_TYPES = {"string": {"keyword", "constant_keyword", "wildcard"}, "ip": {"ip"}, "date": {"date", "date_nanos"},
              "number": {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}}


def panel_fields(dash: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any] | None]]:
    """(where, field, operation, column) for every field a dashboard uses; operation "filter" for filters/queries."""
    search = dash["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    for flt in search["filter"]:
        yield dash["id"], flt["meta"]["key"], "filter", None
    for field in _KQL_FIELD.findall(search["query"]["query"]):
        yield dash["id"], field, "filter", None
    for panel, attrs, _, layer in lens_panels(dash):
        where = f"{dash['id']}: {panel['title']}"
        for field in _KQL_FIELD.findall(attrs["state"]["query"]["query"]):
            yield where, field, "filter", None
        for column in layer["columns"].values():
            if column["sourceField"] != "___records___":
                yield where, column["sourceField"], column["operationType"], column
            if "sortField" in column.get("params", {}):
                yield where, column["params"]["sortField"], "sort", None
            for field in _KQL_FIELD.findall((column.get("filter") or {}).get("query", "")):
                yield where, field, "filter", None


def test_every_panel_field_is_in_the_index_template_with_a_fitting_type(template_fields):
    for dash in DASHBOARDS:
        for where, field, operation, column in panel_fields(dash):
            assert field in template_fields, f"{where}: {field} is not mapped by our index template"
            es_type = template_fields[field]
            if operation != "filter":
                assert es_type in AGGREGATABLE, f"{where}: {operation} on {field} needs an aggregatable type, not {es_type}"
            if operation == "date_histogram" or operation == "sort":
                assert es_type in LENS_TYPES["date"], f"{where}: {field} is {es_type}, not a date"
            if column is not None and column["dataType"] in LENS_TYPES and operation not in ("count", "unique_count"):
                assert es_type in LENS_TYPES[column["dataType"]], f"{where}: {field} is {es_type}, Lens says {column['dataType']}"


@pytest.fixture(scope="module")
def template_fields() -> dict[str, str]:
    from forwarder.es_templates import FIELD_TYPES

    return FIELD_TYPES


@pytest.fixture(scope="module")
def written_fields(tmp_path_factory) -> dict[str, set[str]]:
    """dataset → every field ``to_ecs`` writes for some event the vendor's source reads from its simulator."""
    from forwarder.ecs import to_ecs

    def leaves(doc: dict[str, Any], prefix: str = "") -> Iterator[str]:
        for key, value in doc.items():
            name = f"{prefix}{key}"
            yield from leaves(value, f"{name}.") if isinstance(value, dict) else [name]

    return {sample_dataset(vendor): {f for event in simulated_events(vendor, 60, tmp_path_factory.mktemp(vendor))
                                     for f in leaves(to_ecs(event))}
            for vendor in VENDOR_SOURCES}


def test_every_panel_field_is_written_for_every_vendor_the_dashboard_shows(written_fields):
    """A field a vendor never writes silently leaves that vendor out of a chart (an empty "Top tenants" table, say).
    Only a table's ``last_value`` detail columns may be filled by some of the vendors."""
    for dash in DASHBOARDS:
        meta = dash["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]["filter"][0]["meta"]
        datasets = [meta["params"]["query"]] if meta["type"] == "phrase" else meta["params"]
        for where, field, operation, _ in panel_fields(dash):
            writers = [d for d in datasets if field in written_fields[d]]
            if operation == "last_value":
                assert writers, f"{where}: no vendor writes {field}"
            else:
                assert writers == datasets, f"{where}: {field} is never written for {sorted(set(datasets) - set(writers))}"
