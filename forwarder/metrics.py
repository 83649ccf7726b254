"""The forwarder's metrics: one registry, small hooks the engine calls, read by ``/metrics``.

Sources, sinks and the HTTP layer never import ``prometheus_client``; they call
the hooks below. Label values are only names from the config (source, sink),
vendor types, HTTP client names and status classes: never a secret, a URL or
record content.

Another module adds its own gauges with ``register_gauges(name, help, labels,
read)``: ``read`` is a plain function returning ``(label values, value)`` pairs
and runs at every scrape (e.g. coverage lag per source).

``reset()`` starts a fresh registry (a test).

Without ``prometheus_client`` (the engine copy inside the Splunk add-on, which
serves no ``/metrics``) every hook does nothing.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from typing import Any, Callable, Iterable, Iterator

from forwarder import __version__
from forwarder.timeutil import parse_time

log = logging.getLogger("forwarder.metrics")


class _Null:
    """Stands in for a metric, and for the registry, when prometheus_client is not installed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def labels(self, *values: str) -> "_Null":
        return self

    def inc(self, *args: Any) -> None:
        pass

    set = observe = info = register = inc


try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    disable_created_metrics()  # no *_created series: they double the exposition and no dashboard reads them
except ImportError:  # the Splunk add-on's copy of the engine
    CollectorRegistry = Counter = Gauge = Histogram = Info = _Null  # type: ignore[misc,assignment]
    Collector = object  # type: ignore[misc,assignment]

    def generate_latest(registry: Any = None) -> bytes:  # type: ignore[misc]
        return b""

GaugeReader = Callable[[], Iterable[tuple[tuple[str, ...], float]]]
#: (key of ``forwarder.coverage.coverage_metrics``, metric, help) of the coverage ledger's gauges.
_COVERAGE = (
    ("lag_seconds", "forwarder_coverage_lag_seconds", "Now minus the end of the last window the coverage ledger holds"),
    ("windows", "forwarder_coverage_windows", "Windows in the coverage ledger"),
    ("gap_seconds", "forwarder_coverage_gap_seconds", "Seconds of the covered range no ledger window covers (siem-forwarder coverage names them)"),
    ("count_mismatches", "forwarder_coverage_count_mismatches", "Windows whose records read differ from the vendor's own count"),
)

PASS_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class _Gauges(Collector):
    """Gauges computed at scrape time by a plain function."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], read: GaugeReader) -> None:
        self.name, self.documentation, self.labelnames, self.read = name, documentation, labelnames, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labelnames))
        for labels, value in self.read():
            family.add_metric([str(v) for v in labels], float(value))
        yield family

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=list(self.labelnames))]


class Metrics:
    """Every metric of one process (see ``current()``)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        Info("forwarder_build", "Version of siem-forwarder and of Python", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        self.records_read = Counter("forwarder_records_read_total", "Vendor records read", ["source", "vendor"], registry=r)
        self.dead_letters = Counter(
            "forwarder_dead_letters_total", "Records that could not be normalized (dead-lettered)", ["source", "vendor"], registry=r
        )
        self.delivered = Counter("forwarder_events_delivered_total", "Events the target accepted (from the outbox, for a sink with one)", ["sink"], registry=r)
        self.rejected = Counter("forwarder_sink_rejected_total", "Events a target refused as bad data (dead-lettered)", ["sink"], registry=r)
        self.delivery_failures = Counter("forwarder_sink_failures_total", "Deliveries that failed", ["sink"], registry=r)
        self.http_requests = Counter(
            "forwarder_http_requests_total", "HTTP requests by client and status class (error: no response)", ["client", "status"], registry=r
        )
        self.http_retries = Counter("forwarder_http_retries_total", "HTTP requests retried", ["client"], registry=r)
        self.http_throttled = Counter("forwarder_http_throttled_total", "HTTP 429 answers", ["client"], registry=r)
        self.rate_wait = Counter(
            "forwarder_rate_limit_wait_seconds_total", "Seconds spent waiting for the client-side rate limiter", ["client"], registry=r
        )
        self.passes = Counter("forwarder_passes_total", "Source passes by result", ["source", "vendor", "result"], registry=r)
        self.pass_seconds = Histogram(
            "forwarder_pass_duration_seconds", "Duration of a source pass", ["source", "vendor"], buckets=PASS_BUCKETS, registry=r
        )
        self.last_success = Gauge(
            "forwarder_last_success_timestamp_seconds", "Unix time of the last pass that ended without error", ["source", "vendor"], registry=r
        )
        self.sink_up = Gauge("forwarder_sink_up", "1 if the sink's last check or delivery succeeded, 0 if it failed", ["sink"], registry=r)
        self._lock = threading.Lock()
        self._committed: dict[str, tuple[str, float]] = {}  # source -> (vendor, cursor time)
        self._queues: dict[str, Callable[[], int]] = {}
        self._outboxes: dict[str, Any] = {}
        self._sink_problems: dict[str, str | None] = {}  # sink -> None (ok) or the last problem
        self._coverage: Callable[[], dict[str, dict[str, float | None]]] | None = None
        self.register_gauges(
            "forwarder_checkpoint_lag_seconds", "Now minus the time the committed cursor reached", ("source", "vendor"), self._lag
        )
        self.register_gauges("forwarder_queue_depth", "Pages waiting in a sink's in-memory queue", ("sink",), self._queue_depth)
        self.register_gauges("forwarder_outbox_bytes", "Bytes held in a sink's outbox", ("sink",), lambda: self._outbox(lambda o: o.size))
        self.register_gauges(
            "forwarder_outbox_batches", "Batches held in a sink's outbox", ("sink",), lambda: self._outbox(lambda o: len(o.segments()))
        )
        for key, name, documentation in _COVERAGE:
            self.register_gauges(name, documentation, ("source",), lambda key=key: self._coverage_values(key))

    def register_gauges(self, name: str, documentation: str, labelnames: tuple[str, ...], read: GaugeReader) -> None:
        """Add gauges read at scrape time from ``read()`` (pairs of label values and value)."""
        if not name.startswith("forwarder_"):
            raise ValueError(f"metric {name!r} must start with forwarder_")
        self.registry.register(_Gauges(name, documentation, labelnames, read))

    def _lag(self) -> Iterator[tuple[tuple[str, ...], float]]:
        with self._lock:
            committed = dict(self._committed)
        wall = time.time()
        for source, (vendor, reached) in sorted(committed.items()):
            yield (source, vendor), max(0.0, wall - reached)

    def _coverage_values(self, key: str) -> Iterator[tuple[tuple[str, ...], float]]:
        read = self._coverage
        if read is None:
            return
        try:
            report = read()
        except Exception:  # the state store is unreachable: no coverage samples, the scrape still answers
            log.debug("coverage metrics unavailable", exc_info=True)
            return
        for source, values in sorted(report.items()):
            if values.get(key) is not None:
                yield (source,), float(values[key])  # type: ignore[arg-type]

    def _queue_depth(self) -> Iterator[tuple[tuple[str, ...], float]]:
        with self._lock:
            queues = dict(self._queues)
        for sink, depth in sorted(queues.items()):
            yield (sink,), depth()

    def _outbox(self, read: Callable[[Any], float]) -> Iterator[tuple[tuple[str, ...], float]]:
        with self._lock:
            outboxes = dict(self._outboxes)
        for sink, outbox in sorted(outboxes.items()):
            yield (sink,), read(outbox)


_current = Metrics()


def current() -> Metrics:
    """The process's metrics."""
    return _current


def reset() -> Metrics:
    """Forget every value and start a fresh registry."""
    global _current
    _current = Metrics()
    return _current


def exposition() -> bytes:
    """The Prometheus text format of every metric."""
    return generate_latest(_current.registry)


def register_gauges(name: str, documentation: str, labelnames: tuple[str, ...], read: GaugeReader) -> None:
    """Add scrape-time gauges to the current registry (see ``Metrics.register_gauges``)."""
    _current.register_gauges(name, documentation, labelnames, read)


# -- hooks the engine calls ---------------------------------------------------------


def page_read(source: str, vendor: str, records: int, dead_letters: int) -> None:
    """A source page was read and normalized."""
    m = _current
    m.records_read.labels(source, vendor).inc(records)
    if dead_letters:
        m.dead_letters.labels(source, vendor).inc(dead_letters)


def pass_ended(source: str, vendor: str, seconds: float, error: str | None) -> None:
    """A source pass finished (``error`` None when it succeeded)."""
    m = _current
    m.passes.labels(source, vendor, "failed" if error else "ok").inc()
    m.pass_seconds.labels(source, vendor).observe(seconds)
    if error is None:
        m.last_success.labels(source, vendor).set(time.time())


def cursor_committed(source: str, vendor: str, cursor: dict[str, Any] | None) -> None:
    """A checkpoint was stored; its ``until`` time (when it has one) drives the lag gauge."""
    until = cursor.get("until") if isinstance(cursor, dict) else None
    if not isinstance(until, str):
        return
    try:
        reached = parse_time(until).timestamp()
    except ValueError:
        return
    with _current._lock:
        _current._committed[source] = (vendor, reached)


def delivered(sink: str, events: int, rejected: int) -> None:
    """A sink accepted a batch (``rejected`` of its events were refused as bad data)."""
    m = _current
    m.delivered.labels(sink).inc(events - rejected)
    if rejected:
        m.rejected.labels(sink).inc(rejected)
    sink_status(sink, None)


def delivery_failed(sink: str, problem: str) -> None:
    """A sink could not deliver a batch."""
    _current.delivery_failures.labels(sink).inc()
    sink_status(sink, problem)


def sink_status(sink: str, problem: str | None) -> None:
    """The sink's last check or delivery succeeded (``problem`` None) or failed."""
    m = _current
    m.sink_up.labels(sink).set(0 if problem else 1)
    with m._lock:
        m._sink_problems[sink] = problem


def sink_problems() -> dict[str, str | None]:
    """Each reported sink's last problem (None: its last check or delivery succeeded)."""
    m = _current
    with m._lock:
        return dict(m._sink_problems)


def watch_coverage(read: Callable[[], dict[str, dict[str, float | None]]]) -> None:
    """Report the coverage ledger at every scrape: ``read`` returns ``coverage_metrics`` output."""
    _current._coverage = read


def unwatch_coverage(read: Callable[[], dict[str, dict[str, float | None]]]) -> None:
    """Stop reporting through ``read`` (its store is closing), unless another reader replaced it."""
    if _current._coverage == read:
        _current._coverage = None


def watch_sink(sink: str, queue_depth: Callable[[], int], outbox: Any = None) -> None:
    """Report a sink's queue depth (and outbox size) at every scrape."""
    m = _current
    with m._lock:
        m._queues[sink] = queue_depth
        if outbox is not None:
            m._outboxes[sink] = outbox


def http_response(client: str, status: int | None) -> None:
    """An HTTP request ended with ``status`` (None: no response)."""
    m = _current
    m.http_requests.labels(client, f"{status // 100}xx" if status else "error").inc()
    if status == 429:
        m.http_throttled.labels(client).inc()


def http_retry(client: str) -> None:
    """An HTTP request is about to be retried."""
    _current.http_retries.labels(client).inc()


def rate_limit_waited(client: str, seconds: float) -> None:
    """The client-side rate limiter held a request this long (under a millisecond is no wait)."""
    if seconds >= 0.001:
        _current.rate_wait.labels(client).inc(seconds)
