"""What the coverage ledger proves: covered intervals, gaps, count mismatches, their likely causes.

The store keeps the ledger (``forwarder.state.LedgerEntry``: one row per closed
window a source read and committed); everything it means is worked out here,
on plain values, so every store implementation only has to keep rows.

- **Covered**: the union of the committed windows ``[start, end)``.
- **Gap**: time inside ``[first, last)`` (first window start, last window end)
  that no committed window covers. Time after ``last`` is not a gap: it is
  the lag, not yet read.
- **Count mismatch**: a window whose vendor count (GreenLake ``total``, Carbon
  Black ``num_found``) differs from the records read.

Likely causes are named from notes the forwarder leaves in the store's scratch
table under ``<source>#coverage``: ``state reset`` (where the checkpoint was),
a run without a checkpoint (where its lookback started), a vendor retention
limit (what could no longer be read). A note explains a gap when the gap
starts where a reset checkpoint was, ends where a lookback started, or
overlaps what retention cut off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence, TypeVar

from forwarder.state import CheckpointStore, LedgerEntry
from forwarder.timeutil import format_time, now as utc_now, parse_time


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T", bound=_Ordered)

#: How far a note's time may be from a gap's edge and still explain it (sources round windows to whole seconds).
SLACK = dt.timedelta(seconds=2)


# -- interval arithmetic (pure) ----------------------------------------------------
def merge(intervals: Iterable[tuple[T, T]]) -> list[tuple[T, T]]:
    """The union of half-open intervals as sorted, disjoint, non-touching intervals (empty ones dropped)."""
    out: list[tuple[T, T]] = []
    for a, b in sorted(i for i in intervals if i[0] < i[1]):
        if out and not out[-1][1] < a:
            if out[-1][1] < b:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def holes(merged: Sequence[tuple[T, T]]) -> list[tuple[T, T]]:
    """The gaps between consecutive intervals of ``merge``'s output."""
    return [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]


def clip(intervals: Iterable[tuple[T, T]], lo: T | None, hi: T | None) -> list[tuple[T, T]]:
    """Each interval cut to ``[lo, hi)`` (None: unbounded); intervals left empty are dropped."""
    out = []
    for a, b in intervals:
        if lo is not None and a < lo:
            a = lo
        if hi is not None and hi < b:
            b = hi
        if a < b:
            out.append((a, b))
    return out


# -- notes: what might explain a gap ---------------------------------------------------
def _notes_name(source: str) -> str:
    return f"{source}#coverage"


def note_reset(store: CheckpointStore, name: str) -> None:
    """Remember, before ``state reset`` forgets it, where the checkpoint of ``name`` was."""
    cursor = store.get(name)
    if cursor and cursor.get("until"):
        at = format_time(utc_now(), 6)
        store.scratch_put(_notes_name(name), f"reset:{at}", {"kind": "reset", "at": at, "until": cursor["until"]})


def note_start(store: CheckpointStore, source: str, start: dt.datetime) -> None:
    """A run without a checkpoint begins at ``start`` (its lookback)."""
    at = format_time(utc_now(), 6)
    store.scratch_put(_notes_name(source), "start", {"kind": "start", "at": at, "start": format_time(start, 6)})


def note_retention(store: CheckpointStore, source: str, start: dt.datetime, floor: dt.datetime, days: int) -> None:
    """``[start, floor)`` was asked for but the vendor keeps only ``days`` days."""
    at = format_time(utc_now(), 6)
    value = {"kind": "retention", "at": at, "from": format_time(start, 6), "to": format_time(floor, 6), "days": days}
    store.scratch_put(_notes_name(source), "retention", value)


def likely_cause(gap: tuple[dt.datetime, dt.datetime], notes: Iterable[dict[str, Any]]) -> str | None:
    """What the notes say about ``gap``, or None when they say nothing."""
    g0, g1 = gap
    said = []
    for n in sorted((n for n in notes if isinstance(n, dict)), key=lambda n: str(n.get("at", ""))):
        try:
            if n["kind"] == "reset" and abs(parse_time(n["until"]) - g0) <= SLACK:
                said.append(f"state reset at {n['at']} (the checkpoint was at {n['until']})")
            elif n["kind"] == "start" and abs(parse_time(n["start"]) - g1) <= SLACK:
                said.append(f"a run without a checkpoint started from its lookback at {n['start']}")
            elif n["kind"] == "retention" and parse_time(n["from"]) < g1 and g0 < parse_time(n["to"]) + SLACK:
                said.append(f"vendor retention: the vendor keeps {n['days']} days, so nothing before {n['to']} could be read")
        except (KeyError, TypeError, ValueError):
            continue  # a damaged note explains nothing
    return "; ".join(said) or None


# -- the report ------------------------------------------------------------------------
@dataclass
class Gap:
    start: dt.datetime
    end: dt.datetime
    cause: str | None = None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class SourceCoverage:
    """What the ledger says about one source (within ``--from``/``--to`` when given)."""

    source: str
    windows: int = 0
    covered: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    read: int = 0
    dead: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    mismatches: list[LedgerEntry] = field(default_factory=list)

    @property
    def first(self) -> dt.datetime | None:
        return self.covered[0][0] if self.covered else None

    @property
    def last(self) -> dt.datetime | None:
        return self.covered[-1][1] if self.covered else None

    @property
    def clean(self) -> bool:
        """No gap and no count mismatch (exit code 0)."""
        return not self.gaps and not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form (times as RFC 3339 text with microseconds)."""
        t = _text
        return {
            "source": self.source,
            "first": t(self.first),
            "last": t(self.last),
            "windows": self.windows,
            "covered": [[t(a), t(b)] for a, b in self.covered],
            "gaps": [{"from": t(g.start), "to": t(g.end), "seconds": g.seconds, "cause": g.cause} for g in self.gaps],
            "read": self.read,
            "dead_letters": self.dead,
            "delivered": self.delivered,
            "count_mismatches": [
                {"from": t(e.start), "to": t(e.end), "read": e.read, "vendor_count": e.vendor_count} for e in self.mismatches
            ],
            "clean": self.clean,
        }


def summarize(
    source: str,
    entries: Sequence[LedgerEntry],
    notes: Iterable[dict[str, Any]] = (),
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> SourceCoverage:
    """The coverage of ``source`` from its ledger entries, limited to ``[start, end)`` when given.

    Counts are those of every window that overlaps the range, whole.
    """
    inside = [e for e in entries if (start is None or start < e.end) and (end is None or e.start < end)]
    report = SourceCoverage(source, windows=len(inside))
    report.covered = merge(clip(((e.start, e.end) for e in inside), start, end))
    notes = list(notes)
    report.gaps = [Gap(a, b, likely_cause((a, b), notes)) for a, b in holes(report.covered)]
    for e in inside:
        report.read += e.read
        report.dead += e.dead
        for sink, count in e.delivered.items():
            report.delivered[sink] = report.delivered.get(sink, 0) + count
    report.mismatches = [e for e in inside if e.vendor_count is not None and e.vendor_count != e.read]
    return report


def source_coverage(
    store: CheckpointStore, source: str, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> SourceCoverage:
    """``summarize`` over what ``store`` holds for ``source``."""
    return summarize(source, store.ledger(source), store.scratch_get(_notes_name(source)).values(), start, end)


def coverage_metrics(store: CheckpointStore, sources: Iterable[str], now: dt.datetime | None = None) -> dict[str, dict[str, float | None]]:
    """Per source: ``lag_seconds`` (since the last committed window end; None before the first),
    ``windows`` (covered-window count), ``gap_seconds`` and ``count_mismatches``, for a metrics endpoint."""
    at = now or utc_now()
    out: dict[str, dict[str, float | None]] = {}
    for source in sources:
        report = source_coverage(store, source)
        out[source] = {
            "lag_seconds": (at - report.last).total_seconds() if report.last is not None else None,
            "windows": float(report.windows),
            "gap_seconds": sum(g.seconds for g in report.gaps),
            "count_mismatches": float(len(report.mismatches)),
        }
    return out


def render(reports: Sequence[SourceCoverage]) -> str:
    """The human-readable report of ``coverage``."""
    lines: list[str] = []

    def t(value: dt.datetime | None) -> str:
        return format_time(value, 0) if value is not None else "-"

    for r in reports:
        if not r.windows:
            lines.append(f"{r.source}: no committed windows (nothing read yet, or a source without windows: a Carbon Black queue)")
            continue
        state = "ok" if r.clean else "INCOMPLETE"
        lines.append(f"{r.source}: {state} — {r.windows} windows, covered {t(r.first)} .. {t(r.last)}")
        sinks = ", ".join(f"{name} {count}" for name, count in sorted(r.delivered.items())) or "none"
        lines.append(f"  records read {r.read}, dead-lettered {r.dead}; delivered per sink: {sinks}")
        if len(r.covered) > 1:
            lines.append("  covered: " + ", ".join(f"{t(a)} .. {t(b)}" for a, b in r.covered))
        for g in r.gaps:
            lines.append(f"  GAP {t(g.start)} .. {t(g.end)} ({_duration(g.seconds)}): {g.cause or 'cause unknown'}")
        for e in r.mismatches:
            lines.append(f"  COUNT MISMATCH {t(e.start)} .. {t(e.end)}: read {e.read}, the vendor counted {e.vendor_count}")
    return "\n".join(lines)


def _text(value: dt.datetime | None) -> str | None:
    return format_time(value, 6) if value is not None else None


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:g}s"
