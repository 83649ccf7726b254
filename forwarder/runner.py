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
from typing import Any, Callable, TypeVar

from forwarder import coverage, metrics, registry
from forwarder.config import Config, SourceConfig, load_config
from forwarder.deadletter import DeadLetters
from forwarder.errors import ConfigError, ForwarderError
from forwarder.export import ExportWriter
from forwarder.logs import fields
from forwarder.pipeline import PassResult, Pipeline, describe, normalize_records, result_fields, window_for
from forwarder.secrets import redact
from forwarder.sinks.base import Sink
from forwarder.sources.base import Page, Source
from forwarder.http import share_limiters_through
from forwarder.state import CheckpointStore, MemoryStore, open_store
from forwarder.timeutil import format_time, now

log = logging.getLogger("forwarder.runner")
T = TypeVar("T")


def _built(where: str, make: Callable[[], T]) -> T:
    """``make()``, with anything a constructor raises about its values (the Elasticsearch client
    refusing a cloud id...) turned into a ConfigError naming the table: every command builds its
    sources and sinks before it does any work, so a bad value ends there, in one line."""
    try:
        return make()
    except ForwarderError:
        raise
    except Exception as exc:
        log.debug("building %s failed", where, exc_info=True)
        raise ConfigError(where, f"cannot be set up: {type(exc).__name__}: {redact(str(exc))[:200]}") from None


def build_source(config: SourceConfig, store: CheckpointStore, state_dir: Path) -> Source:
    """Instantiate the source class registered for ``config.type``."""
    cls = registry.load("source", config.type)
    return _built(f'source "{config.name}"', lambda: cls(config, store, state_dir))


def build_sink(config: SinkConfig) -> Sink:
    """Instantiate the sink class registered for ``config.type``."""
    cls = registry.load("sink", config.type)
    return _built(f'sink "{config.name}"', lambda: cls(config))


def build_all(
    config: Config, sources: list[SourceConfig], store: CheckpointStore, need_sinks: bool = True
) -> tuple[list[Sink], list[Source]]:
    """Every configured sink and the given sources, built before any work starts. All or nothing:
    if one cannot be built, those already built are closed and the error goes up."""
    if need_sinks and not config.sinks:
        raise ConfigError("sink", "no [[sink]] is configured")
    built: list[Sink | Source] = []
    try:
        built += [build_sink(cfg) for cfg in config.sinks]
        built += [build_source(cfg, store, config.state_dir) for cfg in sources]
    except BaseException:
        for target in built:
            target.close()
        raise
    return built[: len(config.sinks)], built[len(config.sinks) :]  # type: ignore[return-value]


def open_all(config: Config, sources: list[SourceConfig]) -> tuple[Any, list[Sink], list[Source]]:
    """The state store, every sink and the given sources (``build_all``); the store is closed again
    if something cannot be built."""
    store = open_store(config)
    try:
        sinks, built = build_all(config, sources, store)
    except BaseException:
        store.close()
        raise
    return store, sinks, built


def make_pipeline(config: Config, sinks: list[Sink], store: CheckpointStore) -> Pipeline:
    """A pipeline whose dead letters and sink outboxes live in the state directory."""
    return Pipeline(sinks, store, DeadLetters(config.state_dir), outbox_dir=config.state_dir / "outbox")


Progress = Callable[[str, Page, int], None]  # (source name, page, events in it)


def run_once(config: Config, only: str | None = None, progress: Progress | None = None) -> list[PassResult]:
    """One pass of every enabled source (or just ``only``) into every sink; ``progress`` hears of each page.

    With a shared store (``[state] url``) a pass needs the source's lease: sources
    another replica holds are reported and skipped.
    """
    chosen = [config.source(only)] if only else [s for s in config.sources if s.enabled]
    store, sinks, built = open_all(config, chosen)
    pipeline = make_pipeline(config, sinks, store)
    sources = list(zip(chosen, built))
    results: list[PassResult] = []
    threads = []
    leased = _share_quotas(store)
    period = config.state["lease"]
    renewing = threading.Event()
    try:
        if leased:
            from forwarder.leases import renew_while

            held = [(cfg, src) for cfg, src in sources if store.acquire(cfg.name, period) is not None]
            for cfg, src in sources:
                if (cfg, src) not in held:
                    src.close()
                    results.append(PassResult(cfg.name, "", error="held by another replica (see `siem-forwarder state show`)"))
            sources = held
            renew_while(store, [cfg.name for cfg, _ in sources], period, renewing)
        for cfg, source in sources:
            guard = (lambda name=cfg.name: store.renew(name, period)) if leased else None

            def one(source: Source = source, cfg: SourceConfig = cfg, guard: Callable[[], None] | None = guard) -> None:
                try:
                    start, end = window_for(cfg, now())
                    heard = None if progress is None else (lambda page, n, name=cfg.name: progress(name, page, n))
                    result = pipeline.run_pass(source, start, end, guard=guard, progress=heard)
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
        renewing.set()
        undelivered = pipeline.close()
        if leased:
            for cfg, _ in sources:
                store.release(cfg.name)
            share_limiters_through(None)
        store.close()
    # A sink behind an outbox that could not deliver: the sources are fine, the target is not.
    results += [PassResult(f"sink {name}", "", error=problem) for name, problem in undelivered]
    return sorted(results, key=lambda r: r.source)


DRAIN_SECONDS = 20.0  # SIGTERM: longest wait for in-flight deliveries (Kubernetes' default grace period is 30 s)


def _open_checked(config: Config) -> list[Sink]:
    """Every sink of ``config``, after every enabled source and sink was shown to build (all or nothing)."""
    store, sinks, built = open_all(config, [cfg for cfg in config.sources if cfg.enabled])
    for source in built:
        source.close()  # each is built again by the thread that serves it (a leased one only once held)
    store.close()
    return sinks


class _Generation:
    """The source threads and pipeline of one loaded configuration, running until ``drain``.

    With a shared store (``[state] url``) this replica runs only the sources it
    holds leases on (``forwarder/leases.py``), and takes over others' when they stop.
    """

    def __init__(self, config: Config, sinks: list[Sink]) -> None:
        self.config = config
        self.stop = threading.Event()
        self.store = open_store(config)
        self.pipeline = make_pipeline(config, sinks, self.store)
        self.leased = _share_quotas(self.store)
        enabled = [cfg for cfg in config.sources if cfg.enabled]
        if self.leased:
            from forwarder.leases import LeaseKeeper

            keeper = LeaseKeeper(self.store, enabled, config.state["lease"], self._serve)
            self.threads = [threading.Thread(target=keeper.run, args=(self.stop,), name="leases", daemon=True)]
            log.info("running up to %d sources as replica %s", len(enabled), self.store.owner)
        else:
            self.threads = [
                threading.Thread(target=self._serve, args=(cfg, self.stop), name=f"source-{cfg.name}", daemon=True)
                for cfg in enabled
            ]
        for thread in self.threads:
            thread.start()

    def _serve(self, cfg: SourceConfig, stopping: threading.Event, guard: Callable[[], None] | None = None) -> None:
        try:
            source = build_source(cfg, self.store, self.config.state_dir)
        except ForwarderError as exc:
            log.error("%s", exc, extra=fields(source=cfg.name, error=str(exc)))
            return
        source.stopping = stopping  # a stop also ends a vendor poll that is waiting
        try:
            while not stopping.is_set():
                try:
                    start, end = window_for(cfg, now())
                    result = self.pipeline.run_pass(source, start, end, stop=stopping, guard=guard)
                except Exception as exc:  # a source thread never dies quietly: report, wait, try again
                    log.debug("source %s crashed", cfg.name, exc_info=True)
                    result = PassResult(cfg.name, source.VENDOR, error=f"unexpected {type(exc).__name__}: {exc}")
                if guard is not None:
                    try:
                        guard()
                    except ForwarderError:
                        if self.store.holds(cfg.name) is None:
                            return  # the lease was lost: the lease keeper says so, on one line
                        # else the database is unreachable: the next pass tries again
                (log.error if result.error else log.info)("%s", describe(result), extra=result_fields(result))
                stopping.wait(cfg.interval)
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
        if self.leased:
            share_limiters_through(None)
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
    sinks = _open_checked(config)
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
            new_sinks = _open_checked(new)
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
    store, sinks, (source,) = open_all(config, [cfg])
    shared = _share_quotas(store)
    pipeline = make_pipeline(config, sinks, store)
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
            events, bad = normalize_records(source, page.records, page.rejected)
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
    sinks, sources = build_all(config, config.sources, MemoryStore(), need_sinks=False)
    results: list[tuple[str, bool, str]] = []
    for what, target in [(f"source {s.name}", s) for s in sources] + [(f"sink {s.name}", s) for s in sinks]:
        try:
            results.append((what, True, target.check()))
        except ForwarderError as exc:
            results.append((what, False, _unprefixed(str(exc), what)))
        finally:
            target.close()
    return results


def _unprefixed(detail: str, what: str) -> str:
    """``detail`` without a leading ``... sink NAME:`` that repeats ``what`` (the name is shown once)."""
    head, sep, rest = detail.partition(": ")
    return rest if sep and (head == what or head.endswith(" " + what)) else detail


def _check_range(start: dt.datetime, end: dt.datetime) -> None:
    if start >= end:
        raise ConfigError("--from/--to", "--from must be before --to")
