"""Writes the Kibana saved objects under ``forwarder/kibana/objects/`` (a maintainer tool).

``python -m forwarder.kibana.generate`` rewrites one pretty JSON file per
object from the definitions below; the JSON files are what ships and what
reviewers read. A test fails when the files and these definitions disagree.

Every id is stable (derived from names), every panel is a by-value Lens panel
with one layer on the ``forwarder-logs`` data view, and every dashboard
carries a ``data_stream.dataset`` filter. Objects declare the migration
versions of Kibana 8.9 (the oldest Kibana they import into); newer Kibanas
migrate them on import.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from forwarder.ecs import DATASET_PREFIX
from forwarder.es_templates import ALL_PATTERNS

DATA_VIEW_ID = "forwarder-logs"
DATA_VIEW_PATTERN = ALL_PATTERNS  # data streams and the daily indices of index_mode = "daily"
TAG_ID = "forwarder-tag"
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"tag": "8.0.0", "index-pattern": "7.11.0", "dashboard": "8.9.0"}
VENDORS = {
    "hpe_greenlake": "HPE GreenLake",
    "crusoe": "Crusoe Cloud",
    "progress_mft": "Progress Automate MFT",
    "carbon_black_cloud": "Carbon Black Cloud",
}
# Vendors whose source fills AuditEvent.target (mapped under <vendor>.audit.target.*).
VENDORS_WITH_TARGETS = ("hpe_greenlake", "crusoe", "progress_mft", "carbon_black_cloud")
# Vendors whose source fills AuditEvent.tenant_name (organization.name); every source fills organization.id.
VENDORS_WITH_TENANT_NAMES = ("hpe_greenlake", "crusoe")
FILTER_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.filter[0].meta.index"
FAILURES = 'event.outcome : "failure"'
_NS = uuid.UUID("6f0b5a38-93c4-4c38-9a3c-2f3f4b6c9e11")
_GRID_COLUMNS = 48


def dataset_of(vendor: str) -> str:
    """The data stream dataset of a vendor (as ``forwarder.ecs.dataset`` names it)."""
    return f"{DATASET_PREFIX}{vendor}.audit"


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def _meta(obj_type: str) -> dict[str, Any]:
    return {
        "type": obj_type,
        "managed": False,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[obj_type],
    }


# -- Lens columns ------------------------------------------------------------------------------

def count(label: str = "Events") -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": "number", "operationType": "count", "isBucketed": False,
            "scale": "ratio", "sourceField": "___records___", "params": {"emptyAsNull": True}}


def over_time() -> dict[str, Any]:
    return {"label": "@timestamp", "dataType": "date", "operationType": "date_histogram", "sourceField": "@timestamp",
            "isBucketed": True, "scale": "interval", "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False}}


def top(field: str, label: str, size: int, order_by: str | None, data_type: str = "string", other: bool = True) -> dict[str, Any]:
    """Top values of ``field`` ordered by column ``order_by`` (descending), or alphabetically when None."""
    order = {"type": "column", "columnId": order_by} if order_by else {"type": "alphabetical", "fallback": False}
    return {"label": label, "customLabel": True, "dataType": data_type, "operationType": "terms", "sourceField": field,
            "isBucketed": True, "scale": "ordinal",
            "params": {"size": size, "orderBy": order, "orderDirection": "desc" if order_by else "asc",
                       "otherBucket": other, "missingBucket": False, "parentFormat": {"id": "terms"},
                       "include": [], "exclude": [], "includeIsRegex": False, "excludeIsRegex": False}}


def latest(field: str, label: str, data_type: str = "string") -> dict[str, Any]:
    """The value of ``field`` in the newest document of the bucket."""
    return {"label": label, "customLabel": True, "dataType": data_type, "operationType": "last_value", "sourceField": field,
            "isBucketed": False, "scale": "ordinal" if data_type != "number" else "ratio",
            "params": {"sortField": "@timestamp", "showArrayValues": True}}


def newest(label: str = "Time") -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": "date", "operationType": "max", "sourceField": "@timestamp",
            "isBucketed": False, "scale": "ratio", "params": {"emptyAsNull": True}}


# -- Lens panels -------------------------------------------------------------------------------

class Panel:
    """One by-value Lens panel: one layer, columns in order, a chart type, an optional KQL query."""

    def __init__(self, key: str, title: str, chart: str, columns: dict[str, dict[str, Any]], w: int, h: int,
                 query: str = "", **chart_options: Any) -> None:
        self.key, self.title, self.chart, self.columns = key, title, chart, columns
        self.w, self.h, self.query, self.chart_options = w, h, query, chart_options

    def build(self, dashboard_id: str, x: int, y: int) -> tuple[dict[str, Any], dict[str, str]]:
        """The panel and the dashboard reference its layer needs."""
        panel_id = _uid(dashboard_id, self.key)
        layer = _uid(dashboard_id, self.key, "layer")
        col = {k: _uid(dashboard_id, self.key, k) for k in self.columns}
        columns = {col[k]: _resolve(c, col) for k, c in self.columns.items()}
        # Buckets first (breakdowns before the time axis, so "top N" ranks over the whole range), then metrics.
        rank = {"terms": 0, "date_histogram": 1}
        order = sorted(columns, key=lambda c: rank.get(columns[c]["operationType"], 2))
        ref_name = f"indexpattern-datasource-layer-{layer}"
        attributes = {
            "title": self.title,
            "description": "",
            "type": "lens",
            "visualizationType": self.chart,
            "references": [{"type": "index-pattern", "id": DATA_VIEW_ID, "name": ref_name}],
            "state": {
                "visualization": self._visualization(layer, col),
                "query": {"language": "kuery", "query": self.query},
                "filters": [],
                "datasourceStates": {"formBased": {"layers": {layer: {
                    "columnOrder": order, "columns": columns, "incompleteColumns": {},
                    "indexPatternId": DATA_VIEW_ID, "sampling": 1, "ignoreGlobalFilters": False}}}},
                "internalReferences": [],
                "adHocDataViews": {},
            },
        }
        panel = {
            "type": "lens",
            "panelIndex": panel_id,
            "title": self.title,
            "gridData": {"x": x, "y": y, "w": self.w, "h": self.h, "i": panel_id},
            "embeddableConfig": {"attributes": attributes, "enhancements": {}},
        }
        return panel, {"type": "index-pattern", "id": DATA_VIEW_ID, "name": f"{panel_id}:{ref_name}"}

    def _visualization(self, layer: str, col: dict[str, str]) -> dict[str, Any]:
        o = self.chart_options
        if self.chart == "lnsMetric":
            return {"layerId": layer, "layerType": "data", "metricAccessor": col[o["metric"]]}
        if self.chart == "lnsPie":
            return {"shape": "donut", "layers": [{
                "layerId": layer, "layerType": "data", "primaryGroups": [col[g] for g in o["groups"]],
                "metrics": [col[o["metric"]]], "numberDisplay": "percent", "categoryDisplay": "default",
                "legendDisplay": "default", "nestedLegend": False}]}
        if self.chart == "lnsDatatable":
            return {"layerId": layer, "layerType": "data", "columns": [{"columnId": col[k]} for k in self.columns]}
        series = o["series"]
        data_layer = {"layerId": layer, "layerType": "data", "seriesType": series, "xAccessor": col[o["x"]],
                      "accessors": [col[o["y"]]], "position": "top", "showGridlines": False}
        if "split" in o:
            data_layer["splitAccessor"] = col[o["split"]]
        return {"preferredSeriesType": series, "layers": [data_layer], "legend": {"isVisible": True, "position": "right"},
                "valueLabels": "hide", "fittingFunction": "None",
                "axisTitlesVisibilitySettings": {"x": False, "yLeft": False, "yRight": True},
                "tickLabelsVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
                "gridlinesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True}}


def _resolve(column: dict[str, Any], col: dict[str, str]) -> dict[str, Any]:
    """Replace the panel-local column key in a terms ``orderBy`` with the column's id."""
    order = column.get("params", {}).get("orderBy", {})
    if order.get("type") == "column":
        column = {**column, "params": {**column["params"], "orderBy": {"type": "column", "columnId": col[order["columnId"]]}}}
    return column


# -- panels shared by the dashboards -------------------------------------------------------------

def metric_panel(key: str, title: str, column: dict[str, Any], query: str = "") -> Panel:
    return Panel(key, title, "lnsMetric", {"n": column}, 12, 6, query, metric="n")


def headline() -> list[Panel]:
    """The row of numbers on top of every dashboard."""
    return [metric_panel("events", "Events", count("Events")),
            metric_panel("failures", "Failures", count("Failures"), FAILURES),
            metric_panel("actor-count", "Distinct actors", _unique("user.name", "Distinct actors")),
            metric_panel("source-ip-count", "Distinct source IPs", _unique("source.ip", "Distinct source IPs"))]


def _unique(field: str, label: str) -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": "number", "operationType": "unique_count", "sourceField": field,
            "isBucketed": False, "scale": "ratio", "params": {"emptyAsNull": True}}


def outcome_donut() -> Panel:
    return Panel("outcomes", "Outcomes", "lnsPie", {"outcome": top("event.outcome", "Outcome", 3, "n", other=False), "n": count()},
                 12, 12, groups=["outcome"], metric="n")


def top_table(key: str, title: str, field: str, label: str, data_type: str = "string", w: int = 16,
              detail: dict[str, Any] | None = None) -> Panel:
    """Top 10 values of ``field`` (with an optional ``detail`` column) and their event and failure counts."""
    return Panel(key, title, "lnsDatatable",
                 {"v": top(field, label, 10, "n", data_type, other=False), **({"d": detail} if detail else {}),
                  "n": count(), "f": _failures()}, w, 14)


def tenants_table(names: bool) -> Panel:
    """Top tenants by id (every source has one), with their names where the vendor reports them."""
    return top_table("tenants", "Top tenants", "organization.id", "Tenant", w=24,
                     detail=latest("organization.name", "Tenant name") if names else None)


def _failures() -> dict[str, Any]:
    return {**count("Failures"), "filter": {"language": "kuery", "query": FAILURES}}


def recent_failures(with_vendor: bool, tenant_field: str) -> Panel:
    columns: dict[str, dict[str, Any]] = {"id": top("event.id", "Event id", 25, "t", other=False), "t": newest()}
    if with_vendor:
        columns["vendor"] = latest("event.provider", "Vendor")
    columns |= {"action": latest("event.action", "Action"), "user": latest("user.name", "Actor"),
                "ip": latest("source.ip", "Source IP", "ip"),
                "tenant": latest(tenant_field, "Tenant")}
    return Panel("recent-failures", "Recent failures", "lnsDatatable", columns, 48, 16, FAILURES)


def over_time_by(field: str, label: str, title: str) -> Panel:
    return Panel("over-time", title, "lnsXY", {"t": over_time(), "n": count(), "s": top(field, label, 10, "n")},
                 36, 12, series="bar_stacked", x="t", y="n", split="s")


# -- objects -----------------------------------------------------------------------------------

def data_view() -> dict[str, Any]:
    return {"id": DATA_VIEW_ID, **_meta("index-pattern"), "references": [], "attributes": {
        "title": DATA_VIEW_PATTERN, "name": "siem-forwarder audit logs", "timeFieldName": "@timestamp"}}


def tag() -> dict[str, Any]:
    return {"id": TAG_ID, **_meta("tag"), "references": [], "attributes": {
        "name": "siem-forwarder", "description": "Dashboards shipped with siem-forwarder", "color": "#1BA9F5"}}


def dataset_filter(datasets: list[str]) -> dict[str, Any]:
    """A pinned-to-the-dashboard filter on ``data_stream.dataset`` (one value, or any of several)."""
    meta: dict[str, Any] = {"key": "data_stream.dataset", "negate": False, "disabled": False, "alias": None,
                            "indexRefName": FILTER_INDEX_REF}
    if len(datasets) == 1:
        meta |= {"type": "phrase", "params": {"query": datasets[0]}}
        query: dict[str, Any] = {"match_phrase": {"data_stream.dataset": datasets[0]}}
    else:
        meta |= {"type": "phrases", "params": datasets, "value": datasets}
        query = {"bool": {"minimum_should_match": 1,
                          "should": [{"match_phrase": {"data_stream.dataset": d}} for d in datasets]}}
    return {"meta": meta, "query": query, "$state": {"store": "appState"}}


def dashboard(dashboard_id: str, title: str, description: str, datasets: list[str], rows: list[list[Panel]]) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    references = [{"type": "index-pattern", "id": DATA_VIEW_ID, "name": FILTER_INDEX_REF},
                  {"type": "tag", "id": TAG_ID, "name": f"tag-ref-{TAG_ID}"}]
    y = 0
    for row in rows:
        if sum(p.w for p in row) > _GRID_COLUMNS:
            raise ValueError(f"{dashboard_id}: a row is wider than {_GRID_COLUMNS} columns")
        x = 0
        for spec in row:
            panel, ref = spec.build(dashboard_id, x, y)
            panels.append(panel)
            references.append(ref)
            x += spec.w
        y += max(p.h for p in row)
    return {"id": dashboard_id, **_meta("dashboard"), "references": references, "attributes": {
        "title": title,
        "description": description,
        "timeRestore": True,
        "timeFrom": "now-7d",
        "timeTo": "now",
        "refreshInterval": {"pause": True, "value": 60000},
        "version": 1,
        "optionsJSON": {"useMargins": True, "syncColors": True, "syncCursor": True, "syncTooltips": False,
                        "hidePanelTitles": False},
        "kibanaSavedObjectMeta": {"searchSourceJSON": {
            "query": {"language": "kuery", "query": ""}, "filter": [dataset_filter(datasets)]}},
        "panelsJSON": panels,
    }}


def overview() -> dict[str, Any]:
    failures_by_action = Panel(
        "failures-by-action", "Failures by vendor and action", "lnsXY",
        {"a": top("event.action", "Action", 10, "n"), "n": count("Failures"), "v": top("event.provider", "Vendor", 4, "n")},
        24, 14, FAILURES, series="bar_horizontal_stacked", x="a", y="n", split="v")
    return dashboard(
        "forwarder-overview", "[siem-forwarder] Audit overview",
        "Audit events of every vendor the forwarder reads: activity, failures, actors and source addresses.",
        [dataset_of(v) for v in VENDORS],
        [
            headline(),
            [over_time_by("event.provider", "Vendor", "Events over time by vendor"), outcome_donut()],
            [failures_by_action, top_table("actors", "Top actors", "user.name", "Actor", w=24)],
            [top_table("source-ips", "Top source IPs", "source.ip", "Source IP", "ip", w=24), tenants_table(names=True)],
            [recent_failures(with_vendor=True, tenant_field="organization.id")],
        ],
    )


def vendor_dashboard(vendor: str, name: str) -> dict[str, Any]:
    tenant = "organization.name" if vendor in VENDORS_WITH_TENANT_NAMES else "organization.id"
    third = (top_table("targets", "Top target types", f"{vendor}.audit.target.type", "Target type")
             if vendor in VENDORS_WITH_TARGETS else top_table("categories", "Event categories", "event.category", "Category"))
    return dashboard(
        f"forwarder-{vendor}", f"[siem-forwarder] {name} audit",
        f"{name} audit events read by siem-forwarder.",
        [dataset_of(vendor)],
        [
            headline(),
            [over_time_by("event.action", "Action", "Events over time by action"), outcome_donut()],
            [top_table("actions", "Top actions", "event.action", "Action"),
             top_table("actors", "Top actors", "user.name", "Actor"), third],
            [top_table("source-ips", "Top source IPs", "source.ip", "Source IP", "ip", w=24),
             tenants_table(names=vendor in VENDORS_WITH_TENANT_NAMES)],
            [recent_failures(with_vendor=False, tenant_field=tenant)],
        ],
    )


def build() -> list[dict[str, Any]]:
    """Every saved object, in import order (what others reference comes first)."""
    return [tag(), data_view(), overview(), *(vendor_dashboard(v, n) for v, n in VENDORS.items())]


def main() -> None:
    """Rewrite ``objects/<type>/<id>.json`` (and remove files of objects that no longer exist)."""
    from forwarder.kibana import OBJECTS_DIR, pretty

    root = Path(str(OBJECTS_DIR))
    wanted = {root / obj["type"] / f"{obj['id']}.json": obj for obj in build()}
    for old in root.glob("*/*.json"):
        if old not in wanted:
            old.unlink()
    for path, obj in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pretty(obj), encoding="utf-8")
    print(f"wrote {len(wanted)} objects under {root}")


if __name__ == "__main__":
    main()
