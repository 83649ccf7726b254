"""What the CLI commands do, as functions: build sources and sinks from config and run them.

Kept apart from argument parsing so the demo, the tests and the Splunk add-on
call the same code the CLI does.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from forwarder import metrics, registry
from forwarder.config import Config, SourceConfig, load_config
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


DRAIN_SECONDS = 20.0  # SIGTERM: longest wait for in-flight deliveries (Kubernetes' default grace period is 30 s)


class _Generation:
    """The source threads and pipeline of one loaded configuration, running until ``drain``."""

    def __init__(self, config: Config, sinks: list[Sink]) -> None:
        self.config = config
        self.stop = threading.Event()
        self.store = SqliteStore(config.state_dir)
        self.pipeline = make_pipeline(config, sinks, self.store)
        self.threads = [
            threading.Thread(target=self._loop, args=(cfg,), name=f"source-{cfg.name}", daemon=True)
            for cfg in config.sources
            if cfg.enabled
        ]
        for thread in self.threads:
            thread.start()

    def _loop(self, cfg: SourceConfig) -> None:
        try:
            source = build_source(cfg, self.store, self.config.state_dir)
        except ForwarderError as exc:
            log.error("%s", exc, extra=fields(source=cfg.name, error=str(exc)))
            return
        source.stopping = self.stop  # a stop also ends a vendor poll that is waiting
        try:
            while not self.stop.is_set():
                start, end = window_for(cfg, now())
                result = self.pipeline.run_pass(source, start, end, stop=self.stop)
                (log.error if result.error else log.info)("%s", describe(result), extra=result_fields(result))
                self.stop.wait(cfg.interval)
        finally:
            source.close()

    def drain(self, seconds: float) -> bool:
        """Stop reading, let what is in flight be delivered and committed; False if that took over ``seconds``."""
        self.stop.set()
        deadline = time.monotonic() + seconds
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self.threads if t.is_alive()]
        if busy:
            log.error("still delivering after %gs (%s); stopping anyway: the uncommitted tail is read again next time",
                      seconds, ", ".join(busy))
            return False
        for name, problem in self.pipeline.close():
            log.error("sink %s: %s", name, problem, extra=fields(sink=name, error=problem))
        self.store.close()
        return True


def run_daemon(
    config: Config,
    stop: threading.Event | None = None,
    reload: threading.Event | None = None,
    on_config: Callable[[Config], None] | None = None,
    drain_seconds: float = DRAIN_SECONDS,
) -> bool:
    """Run every enabled source every ``interval`` until SIGTERM/SIGINT (or ``stop``).

    SIGHUP (or ``reload``) reads the config file again; a config that does not
    validate is logged and the running one stays. A valid one replaces it after
    the running passes drained; ``on_config`` hears of it. Returns False when a
    drain took longer than ``drain_seconds`` (the process should then exit non-zero).
    """
    stop = stop or threading.Event()
    reload = reload or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: reload.set())
    sinks = build_sinks(config)
    check_sinks(sinks)
    running = _Generation(config, sinks)
    log.info("running %d sources; stop with SIGTERM or Ctrl-C, reload the config with SIGHUP", len(running.threads))
    while not stop.wait(0.2):
        if not reload.is_set():
            continue
        reload.clear()
        try:
            if config.path is None:
                raise ConfigError("", "this configuration was not read from a file; nothing to reload")
            new = load_config(config.path)
            new_sinks = build_sinks(new)
        except ForwarderError as exc:
            log.error("reload refused, the running configuration stays: %s", exc, extra=fields(error=str(exc)))
            continue
        log.info("reloading %s: draining the running passes", config.path)
        if not running.drain(drain_seconds):
            return False
        config, sinks = new, new_sinks
        if on_config is not None:
            on_config(config)
        check_sinks(sinks)
        running = _Generation(config, sinks)
        log.info("reloaded: running %d sources", len(running.threads))
    log.info("stopping: delivering what is in flight (at most %gs)", drain_seconds)
    return running.drain(drain_seconds)


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
