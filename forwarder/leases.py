"""Sharing source instances between replicas: leases, renewal, fair share, fencing.

Each replica runs a ``LeaseKeeper``. Every third of the lease period it
heartbeats, renews the leases it holds, and compares what it holds with its
fair share, ceil(sources / live replicas): over it, it stops the extra sources
(they finish the page at hand and commit) and releases them; under it, it
acquires free or expired leases, in random order so replicas starting together
do not all reach for the same one, and starts a worker thread per acquired
source. A worker also renews its lease before every page it asks the vendor
for, so a destructive read (the Carbon Black queue) only happens right after the
database confirmed the lease. On its first tick a replica only heartbeats, so
replicas started together see each other before they take anything.

Fencing is in the store (``forwarder/state_postgres.py``): every cursor and
scratch write carries the epoch this replica acquired, and fails with
``LeaseLost`` once another replica has taken the lease (or an operator
released it). A lost lease stops that source here with one log line; the new
holder resumes from the last cursor committed under the old epoch.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import Callable

from forwarder.config import SourceConfig
from forwarder.errors import StateError
from forwarder.state_postgres import LeaseLost, PostgresStore

log = logging.getLogger("forwarder.leases")

#: ``work(config, stopping, guard)``: serve one source until ``stopping`` is set; call ``guard()`` before each page.
Work = Callable[[SourceConfig, threading.Event, Callable[[], None]], None]


class LeaseKeeper:
    """Holds this replica's share of the source leases and runs a worker for each."""

    def __init__(self, store: PostgresStore, sources: list[SourceConfig], period: float, work: Work) -> None:
        self.store = store
        self.sources = {cfg.name: cfg for cfg in sources}
        self.period = period
        self.work = work
        self.workers: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self.shedding: set[str] = set()
        self._last_ok = time.monotonic()
        self._failing = False

    def guard(self, name: str) -> Callable[[], None]:
        """What a worker calls before each page: renew the lease, or raise ``LeaseLost``."""
        return lambda: self.store.renew(name, self.period)

    def run(self, stop: threading.Event) -> None:
        """Keep leases and workers until ``stop``; then stop the workers and release every lease."""
        first = True
        try:
            while not stop.is_set():
                self.tick(acquire=not first)
                first = False
                stop.wait(self.period / 3)
        finally:
            self.shutdown()

    def tick(self, acquire: bool = True) -> None:
        """One round: heartbeat, reap, renew, then shed or acquire towards the fair share."""
        try:
            live = self.store.heartbeat(self.period)
            self._reap()
            for name in list(self.workers):
                self._renew(name)
            held = [n for n in self.workers if n not in self.shedding]
            share = math.ceil(len(self.sources) / live)
            if len(held) > share:
                for name in held[share:]:
                    log.info("source %s: handing over (%d live replicas, %d sources each)", name, live, share)
                    self.shedding.add(name)
                    self.workers[name][1].set()
            elif acquire and len(held) < share:
                self._acquire(share - len(held))
            self._last_ok, self._failing = time.monotonic(), False
        except StateError as exc:
            if not self._failing:
                log.warning("leases: %s; retrying", exc)
                self._failing = True
            if time.monotonic() - self._last_ok > self.period:
                for name, (_, stopping) in self.workers.items():
                    stopping.set()  # our leases may be gone: their writes would be refused anyway

    def _renew(self, name: str) -> None:
        try:
            self.store.renew(name, self.period)
        except LeaseLost:
            self.workers[name][1].set()

    def _acquire(self, wanted: int) -> None:
        candidates = self.store.free([n for n in self.sources if n not in self.workers])
        random.shuffle(candidates)
        for name in candidates:
            if wanted <= 0:
                return
            epoch = self.store.acquire(name, self.period)
            if epoch is None:
                continue  # another replica was faster
            log.info("source %s: lease acquired (epoch %d)", name, epoch)
            stopping = threading.Event()
            thread = threading.Thread(
                target=self.work, args=(self.sources[name], stopping, self.guard(name)), name=f"source-{name}", daemon=True
            )
            self.workers[name] = (thread, stopping)
            thread.start()
            wanted -= 1

    def _reap(self) -> None:
        """Release the leases of workers that ended; say so once for each that ended because its lease was lost."""
        for name, (thread, stopping) in list(self.workers.items()):
            if thread.is_alive():
                continue
            del self.workers[name]
            if self.store.holds(name) is not None:
                self.store.release(name)
            elif name not in self.shedding:
                log.warning("source %s: lease lost to another replica (or released by hand); stopped here, its new holder resumes from the last commit", name)
            self.shedding.discard(name)

    def shutdown(self) -> None:
        """Stop every worker, release every lease and the heartbeat (clean stop)."""
        for _, stopping in self.workers.values():
            stopping.set()
        for thread, _ in self.workers.values():
            thread.join()
        try:
            self._reap()
            self.store.leave()
        except StateError as exc:
            log.warning("leases: %s; they expire on their own within %.0fs", exc, self.period)


def renew_while(store: PostgresStore, names: list[str], period: float, stop: threading.Event) -> threading.Thread:
    """A timer thread renewing ``names`` every third of ``period`` until ``stop`` (for ``run --once``)."""

    def loop() -> None:
        while not stop.wait(period / 3):
            for name in names:
                try:
                    store.renew(name, period)
                except StateError:
                    pass  # the worker's next page or commit reports it

    thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
    thread.start()
    return thread
