import csv

import openpyxl
import pytest

from forwarder.event import AuditEvent
from forwarder.export import ExportWriter, neutralize
from forwarder.sources.base import Source


@pytest.mark.parametrize("value", ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_dangerous_cells_are_neutralized(value):
    assert neutralize(value) == "'" + value


@pytest.mark.parametrize("value, out", [("plain", "plain"), (None, ""), (5, 5), ({"a": 1}, '{"a":1}')])
def test_safe_values(value, out):
    assert neutralize(value) == out


def _event(msg):
    return AuditEvent.build(vendor="v", product="audit", raw={"m": msg}, timestamp=0, message=msg)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_spreadsheets_neutralize_and_keep_columns(tmp_path, fmt):
    out = tmp_path / f"x.{fmt}"
    w = ExportWriter(out, fmt, Source.EXPORT_COLUMNS, lambda e: Source.export_row(None, e))
    w.write([_event("=HYPERLINK(\"http://evil\")"), _event("fine")])
    w.close()
    if fmt == "csv":
        rows = list(csv.reader(out.open()))
    else:
        rows = [[c if c is not None else "" for c in r] for r in openpyxl.load_workbook(out).active.iter_rows(values_only=True)]
    header = list(rows[0])
    assert header == list(Source.EXPORT_COLUMNS)
    msg = header.index("message")
    assert rows[1][msg] == "'=HYPERLINK(\"http://evil\")"
    assert rows[2][msg] == "fine"
    assert not (tmp_path / f"x.{fmt}.part").exists()
