"""What the CLI commands do, as functions: build sources and sinks from config and run them.

Kept apart from argument parsing so the demo, the tests and the Splunk add-on
call the same code the CLI does.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from forwarder import metrics, registry
from forwarder.config import Config, SourceConfig
from forwarder.deadletter import DeadLetters
from forwarder.errors import ConfigError, ForwarderError
from forwarder.export import ExportWriter
from forwarder.logs import fields
from forwarder.pipeline import PassResult, Pipeline, describe, normalize_records, result_fields, window_for
from forwarder.sinks.base import Sink
from forwarder.sources.base import Page, Source
from forwarder.state import CheckpointStore, MemoryStore, SqliteStore
from forwarder.timeutil import format_time, now

log = logging.getLogger("forwarder.runner")


def build_source(config: SourceConfig, store: CheckpointStore, state_dir: Path) -> Source:
    """Instantiate the source class registered for ``config.type``."""
    cls = registry.load("source", config.type)
    return cls(config, store, state_dir)


def build_sinks(config: Config) -> list[Sink]:
    """Instantiate every configured sink."""
    if not config.sinks:
        raise ConfigError("sink", "no [[sink]] is configured")
    return [registry.load("sink", s.type)(s) for s in config.sinks]


def make_pipeline(config: Config, sinks: list[Sink], store: CheckpointStore) -> Pipeline:
    """A pipeline whose dead letters and sink outboxes live in the state directory."""
    return Pipeline(sinks, store, DeadLetters(config.state_dir), outbox_dir=config.state_dir / "outbox")


Progress = Callable[[str, Page, int], None]  # (source name, page, events in it)


def run_once(config: Config, only: str | None = None, progress: Progress | None = None) -> list[PassResult]:
    """One pass of every enabled source (or just ``only``) into every sink; ``progress`` hears of each page."""
    store = SqliteStore(config.state_dir)
    pipeline = make_pipeline(config, build_sinks(config), store)
    sources = [config.source(only)] if only else [s for s in config.sources if s.enabled]
    results: list[PassResult] = []
    threads = []
    try:
        for cfg in sources:
            source = build_source(cfg, store, config.state_dir)

            def one(source: Source = source, cfg: SourceConfig = cfg) -> None:
                try:
                    start, end = window_for(cfg, now())
                    heard = None if progress is None else (lambda page, n, name=cfg.name: progress(name, page, n))
                    result = pipeline.run_pass(source, start, end, progress=heard)
                except Exception as exc:  # never let a source vanish from the summary
                    log.debug("source %s crashed", cfg.name, exc_info=True)
                    result = PassResult(cfg.name, source.VENDOR, error=f"unexpected {type(exc).__name__}: {exc}")
                finally:
                    source.close()
                log.debug("%s", describe(result), extra=result_fields(result))  # the caller prints the summary
                results.append(result)

            thread = threading.Thread(target=one, name=f"source-{cfg.name}")
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    finally:
        undelivered = pipeline.close()
        store.close()
    # A sink behind an outbox that could not deliver: the sources are fine, the target is not.
    results += [PassResult(f"sink {name}", "", error=problem) for name, problem in undelivered]
    return sorted(results, key=lambda r: r.source)


def run_daemon(config: Config, stop: threading.Event | None = None) -> None:
    """Run every enabled source every ``interval`` until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    store = SqliteStore(config.state_dir)
    sinks = build_sinks(config)
    check_sinks(sinks)
    pipeline = make_pipeline(config, sinks, store)

    def loop(cfg: SourceConfig) -> None:
        source = build_source(cfg, store, config.state_dir)
        source.stopping = stop  # SIGTERM also ends a vendor poll that is waiting
        try:
            while not stop.is_set():
                start, end = window_for(cfg, now())
                result = pipeline.run_pass(source, start, end, stop=stop)
                (log.error if result.error else log.info)("%s", describe(result), extra=result_fields(result))
                stop.wait(cfg.interval)
        finally:
            source.close()

    threads = [threading.Thread(target=loop, args=(cfg,), name=f"source-{cfg.name}") for cfg in config.sources if cfg.enabled]
    log.info("running %d sources; stop with SIGTERM or Ctrl-C", len(threads))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    finally:
        stop.set()
        for name, problem in pipeline.close():
            log.error("sink %s: %s", name, problem, extra=fields(sink=name, error=problem))
        store.close()


def check_sinks(sinks: list[Sink]) -> None:
    """Probe every sink once, so readiness and ``forwarder_sink_up`` are known before the first delivery."""
    for sink in sinks:
        try:
            sink.check()
            metrics.sink_status(sink.name, None)
        except ForwarderError as exc:
            log.error("%s", exc, extra=fields(sink=sink.name, error=str(exc)))
            metrics.sink_status(sink.name, str(exc))


def backfill_key(name: str, start: dt.datetime, end: dt.datetime) -> str:
    """Checkpoint key of a backfill: its own, so an interrupted backfill resumes and the live cursor is untouched."""
    return f"{name}@backfill:{format_time(start, 0)}/{format_time(end, 0)}"


def backfill(
    config: Config, name: str, start: dt.datetime, end: dt.datetime, progress: Callable[[Page, int], None] | None = None
) -> PassResult:
    """Read ``[start, end)`` of one source into every sink, resumable under its own checkpoint."""
    cfg = config.source(name)
    _check_range(start, end)
    store = SqliteStore(config.state_dir)
    pipeline = make_pipeline(config, build_sinks(config), store)
    source = build_source(cfg, store, config.state_dir)
    try:
        if not source.SUPPORTS_RANGE:
            raise ConfigError(f'source "{name}"', "this source cannot read a past time range (see its mode option)")
        result = pipeline.run_pass(source, start, end, key=backfill_key(name, start, end), progress=progress)
    finally:
        source.close()
        undelivered = pipeline.close()
        store.close()
    if undelivered and result.error is None:
        result.error = "; ".join(f"sink {sink}: {problem}" for sink, problem in undelivered)
    return result


def export(
    config: Config, name: str, start: dt.datetime, end: dt.datetime, fmt: str, output: Path, progress: Progress | None = None
) -> PassResult:
    """Fetch ``[start, end)`` of one source straight into a file; no checkpoint is read or written."""
    cfg = config.source(name)
    _check_range(start, end)
    store = MemoryStore()
    source = build_source(cfg, store, config.state_dir)
    result = PassResult(name, source.VENDOR)
    dead = DeadLetters(config.state_dir)
    writer = ExportWriter(output, fmt, source.EXPORT_COLUMNS, source.export_row)
    try:
        if not source.SUPPORTS_RANGE:
            raise ConfigError(f'source "{name}"', "this source cannot read a past time range (see its mode option)")
        for page in source.fetch(None, start, end):
            events, bad = normalize_records(source, page.records)
            dead.write_many(f"source:{name}", bad)
            writer.write(events)
            result.events += len(events)
            result.delivered += len(events)
            result.dead_letters += len(bad)
            result.pages += 1
            if progress is not None:
                progress(name, page, len(events))
            for hook in page.on_committed:
                hook()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        source.close()
    return result


def check(config: Config) -> list[tuple[str, bool, str]]:
    """Probe every source and sink without consuming or writing anything."""
    store = MemoryStore()
    probes: list[tuple[str, Callable[[], Any]]] = [
        (f"source {cfg.name}", lambda cfg=cfg: build_source(cfg, store, config.state_dir)) for cfg in config.sources
    ]
    probes += [(f"sink {cfg.name}", lambda cfg=cfg: registry.load("sink", cfg.type)(cfg)) for cfg in config.sinks]
    results: list[tuple[str, bool, str]] = []
    for what, build in probes:
        try:
            target = build()
            try:
                results.append((what, True, target.check()))
            finally:
                target.close()
        except ForwarderError as exc:
            results.append((what, False, _unprefixed(str(exc), what)))
    return results


def _unprefixed(detail: str, what: str) -> str:
    """``detail`` without a leading ``... sink NAME:`` that repeats ``what`` (the name is shown once)."""
    head, sep, rest = detail.partition(": ")
    return rest if sep and (head == what or head.endswith(" " + what)) else detail


def _check_range(start: dt.datetime, end: dt.datetime) -> None:
    if start >= end:
        raise ConfigError("--from/--to", "--from must be before --to")
