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

from forwarder import coverage, registry
from forwarder.config import Config, SourceConfig
from forwarder.deadletter import DeadLetters
from forwarder.errors import ConfigError, ForwarderError
from forwarder.export import ExportWriter
from forwarder.pipeline import PassResult, Pipeline, describe, normalize_records, window_for
from forwarder.sinks.base import Sink
from forwarder.sources.base import Page, Source
from forwarder.http import share_limiters_through
from forwarder.state import CheckpointStore, MemoryStore, open_store
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


def run_once(config: Config, only: str | None = None) -> list[PassResult]:
    """One pass of every enabled source (or just ``only``) into every sink.

    With a shared store (``[state] url``) a pass needs the source's lease: sources
    another replica holds are reported and skipped.
    """
    store = open_store(config)
    pipeline = make_pipeline(config, build_sinks(config), store)
    sources = [config.source(only)] if only else [s for s in config.sources if s.enabled]
    results: list[PassResult] = []
    threads = []
    leased = _share_quotas(store)
    period = config.state["lease"]
    renewing = threading.Event()
    try:
        if leased:
            from forwarder.leases import renew_while

            held = [cfg for cfg in sources if store.acquire(cfg.name, period) is not None]
            results += [PassResult(cfg.name, "", error="held by another replica (see `siem-forwarder state show`)")
                        for cfg in sources if cfg not in held]
            sources = held
            renew_while(store, [cfg.name for cfg in sources], period, renewing)
        for cfg in sources:
            source = build_source(cfg, store, config.state_dir)
            guard = (lambda name=cfg.name: store.renew(name, period)) if leased else None

            def one(source: Source = source, cfg: SourceConfig = cfg, guard: Callable[[], None] | None = guard) -> None:
                try:
                    start, end = window_for(cfg, now())
                    result = pipeline.run_pass(source, start, end, guard=guard)
                except Exception as exc:  # never let a source vanish from the summary
                    log.debug("source %s crashed", cfg.name, exc_info=True)
                    result = PassResult(cfg.name, source.VENDOR, error=f"unexpected {type(exc).__name__}: {exc}")
                finally:
                    source.close()
                log.debug("%s", describe(result))  # the caller prints the summary
                results.append(result)

            thread = threading.Thread(target=one, name=f"source-{cfg.name}")
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    finally:
        renewing.set()
        undelivered = pipeline.close()
        if leased:
            for cfg in sources:
                store.release(cfg.name)
            share_limiters_through(None)
        store.close()
    # A sink behind an outbox that could not deliver: the sources are fine, the target is not.
    results += [PassResult(f"sink {name}", "", error=problem) for name, problem in undelivered]
    return sorted(results, key=lambda r: r.source)


def run_daemon(config: Config, stop: threading.Event | None = None) -> None:
    """Run every enabled source every ``interval`` until SIGTERM/SIGINT (or ``stop``).

    With a shared store (``[state] url``) this replica runs only the sources it
    holds leases on (``forwarder/leases.py``), and takes over others' when they stop.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    store = open_store(config)
    pipeline = make_pipeline(config, build_sinks(config), store)
    leased = _share_quotas(store)

    def serve(cfg: SourceConfig, stopping: threading.Event, guard: Callable[[], None] | None = None) -> None:
        source = build_source(cfg, store, config.state_dir)
        source.stopping = stopping  # SIGTERM also ends a vendor poll that is waiting
        try:
            while not stopping.is_set():
                start, end = window_for(cfg, now())
                result = pipeline.run_pass(source, start, end, stop=stopping, guard=guard)
                if guard is not None:
                    try:
                        guard()
                    except ForwarderError:
                        if store.holds(cfg.name) is None:
                            return  # the lease was lost: the lease keeper says so, on one line
                        # else the database is unreachable: the next pass tries again
                (log.error if result.error else log.info)("%s", describe(result))
                stopping.wait(cfg.interval)
        finally:
            source.close()

    enabled = [cfg for cfg in config.sources if cfg.enabled]
    threads = [] if leased else [threading.Thread(target=serve, args=(cfg, stop), name=f"source-{cfg.name}") for cfg in enabled]
    if leased:
        from forwarder.leases import LeaseKeeper

        keeper = LeaseKeeper(store, enabled, config.state["lease"], serve)
        threads = [threading.Thread(target=keeper.run, args=(stop,), name="leases")]
        log.info("running up to %d sources as replica %s; stop with SIGTERM or Ctrl-C", len(enabled), store.owner)
    else:
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
            log.error("sink %s: %s", name, problem)
        if leased:
            share_limiters_through(None)
        store.close()


def _share_quotas(store: Any) -> bool:
    """With a store shared by replicas, vendor quotas are kept in it too; True if so."""
    if not hasattr(store, "rate_limiter"):
        return False
    share_limiters_through(store.rate_limiter)
    return True


def backfill_key(name: str, start: dt.datetime, end: dt.datetime) -> str:
    """Checkpoint key of a backfill: its own, so an interrupted backfill resumes and the live cursor is untouched."""
    return f"{name}@backfill:{format_time(start, 0)}/{format_time(end, 0)}"


def backfill(
    config: Config, name: str, start: dt.datetime, end: dt.datetime, progress: Callable[[Page, int], None] | None = None
) -> PassResult:
    """Read ``[start, end)`` of one source into every sink, resumable under its own checkpoint."""
    cfg = config.source(name)
    _check_range(start, end)
    store = open_store(config)
    shared = _share_quotas(store)
    pipeline = make_pipeline(config, build_sinks(config), store)
    source = build_source(cfg, store, config.state_dir)
    try:
        if not source.SUPPORTS_RANGE:
            raise ConfigError(f'source "{name}"', "this source cannot read a past time range (see its mode option)")
        result = pipeline.run_pass(source, start, end, key=backfill_key(name, start, end), progress=progress)
    finally:
        source.close()
        undelivered = pipeline.close()
        if shared:
            share_limiters_through(None)
        store.close()
    if undelivered and result.error is None:
        result.error = "; ".join(f"sink {sink}: {problem}" for sink, problem in undelivered)
    return result


def coverage_report(
    config: Config, only: str | None = None, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> list[coverage.SourceCoverage]:
    """What the coverage ledger says about every configured source (or just ``only``)."""
    names = [config.source(only).name] if only else [s.name for s in config.sources]
    store = open_store(config)
    try:
        return [coverage.source_coverage(store, name, start, end) for name in names]
    finally:
        store.close()


def reset_checkpoint(config: Config, name: str) -> bool:
    """Forget one checkpoint (True if there was one), noting in the ledger's notes where it was."""
    store = open_store(config)
    try:
        if any(s.name == name for s in config.sources):  # a backfill key's reset leaves no gap
            coverage.note_reset(store, name)
        return store.reset(name)
    finally:
        store.close()


def export(config: Config, name: str, start: dt.datetime, end: dt.datetime, fmt: str, output: Path) -> PassResult:
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
            events, bad = normalize_records(source, page.records, page.rejected)
            dead.write_many(f"source:{name}", bad)
            writer.write(events)
            result.events += len(events)
            result.dead_letters += len(bad)
            result.pages += 1
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
            results.append((what, False, str(exc)))
    return results


def _check_range(start: dt.datetime, end: dt.datetime) -> None:
    if start >= end:
        raise ConfigError("--from/--to", "--from must be before --to")
