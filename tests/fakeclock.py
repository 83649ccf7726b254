"""A clock for tests that moves only when a test moves it or something sleeps on it."""

from __future__ import annotations

import threading


class FakeClock:
    """Callable like ``time.monotonic``; ``sleep`` advances it (thread-safe) and records the wait."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(0.0, seconds)
