"""Writers for ``siem-forwarder export``: NDJSON (ECS), CSV and XLSX.

Spreadsheet cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return are prefixed with ``'`` so Excel and LibreOffice show them as text instead
of running them as formulas (CSV/formula injection). Writers stream: memory
does not grow with the number of rows (XLSX uses xlsxwriter's constant-memory mode).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable

from forwarder import jsoncodec
from forwarder.ecs import to_ecs
from forwarder.errors import ConfigError, ForwarderError
from forwarder.event import AuditEvent

FORMATS = ("ndjson", "csv", "xlsx")
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_EXACT_INT = 2**53  # larger integers lose digits as spreadsheet numbers


def neutralize(value: Any) -> Any:
    """Make a cell value safe for spreadsheets; other values pass through (None becomes '').

    Whatever the vendor sent fits a cell: objects become JSON text, a lone surrogate its
    ``\\udXXX`` escape (a UTF-8 file cannot hold it), an integer no float can hold its digits.
    """
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = jsoncodec.dumps_str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EXACT_INT:
        return str(value)
    if isinstance(value, str):
        if not value.isascii():
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        if value.startswith(_DANGEROUS):
            return "'" + value
    return value


class ExportWriter:
    """Writes events to ``path`` in one format; write to a temporary name, renamed on ``close``."""

    def __init__(self, path: str | Path, fmt: str, columns: tuple[str, ...], row: Callable[[AuditEvent], dict[str, Any]]) -> None:
        if fmt not in FORMATS:
            raise ConfigError("--format", f"must be one of {', '.join(FORMATS)}")
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.fmt = fmt
        self.columns = columns
        self.row = row
        self.count = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "xlsx":
                import xlsxwriter

                self._book = xlsxwriter.Workbook(str(self.tmp), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False})
                self._sheet = self._book.add_worksheet("audit logs")
                bold = self._book.add_format({"bold": True})
                for col, name in enumerate(columns):
                    self._sheet.write_string(0, col, name, bold)
            else:
                self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
                if fmt == "csv":
                    self._csv = csv.writer(self._fh)
                    self._csv.writerow(columns)
        except OSError as exc:
            raise ForwarderError(f"export: cannot write {self.path}: {exc.strerror}") from None

    def write(self, events: list[AuditEvent]) -> None:
        """Append events."""
        if self.fmt == "ndjson":
            self._fh.write("".join(jsoncodec.dumps_str(to_ecs(e)) + "\n" for e in events))
        elif self.fmt == "csv":
            for e in events:
                r = self.row(e)
                self._csv.writerow([neutralize(r.get(c)) for c in self.columns])
        else:
            for e in events:
                r = self.row(e)
                self.count += 1
                for col, name in enumerate(self.columns):
                    value = neutralize(r.get(name))
                    if isinstance(value, str):
                        self._sheet.write_string(self.count, col, value)
                    else:
                        self._sheet.write(self.count, col, value)
            return
        self.count += len(events)

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self.fmt == "xlsx":
            self._book.close()
        else:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        try:
            if self.fmt == "xlsx":
                self._book.close()
            else:
                self._fh.close()
        finally:
            self.tmp.unlink(missing_ok=True)
