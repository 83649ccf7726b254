"""Garbage-collector settings for a process that moves events for a long time.

Every event allocates a few dozen short-lived containers (the record, its
normalized form, the ECS document). Events hold no reference cycles, so
reference counting frees all of them; the cyclic collector only has to find the
rare cycle (a library's, an exception's). CPython starts a young-generation
collection after every 700 net container allocations, and each one walks every
young object still alive: with pages of a thousand records in flight, that walk
cost about 6% of the forwarder's CPU even with the threshold raised to 10,000
(0.21-0.26 s of 4.3 s for 100k events in ``python -m bench engine``, timed with
``gc.callbacks``; by the clock: 0.05-0.08 s), and found almost nothing to free.

So ``settle`` turns the automatic collector off and runs it by the clock instead:
the young generation once a second, the middle one every 10 seconds, a full
collection every minute. A cycle lives at most about a second before it is
freed; the collections walk what is alive at that moment, once, instead of
dozens of times a second. Start-up objects (imports, configuration, clients)
live until exit: ``gc.freeze`` moves them out of every collection's sight.
"""

from __future__ import annotations

import gc
import threading

#: Seconds between collections of the young generation.
PERIOD = 1.0
#: Every this many periods the middle generation is collected too, and every ``FULL`` a full collection runs.
MIDDLE = 10
FULL = 60

_stop: threading.Event | None = None
_thread: threading.Thread | None = None


def settle() -> None:
    """Collect once, freeze what start-up built, and collect by the clock from now on.

    Called by ``siem-forwarder run`` once its configuration is loaded and before the
    first pass. Calling it again changes nothing.
    """
    global _stop, _thread
    if _thread is not None:
        return
    gc.collect()
    gc.freeze()
    gc.disable()
    _stop = threading.Event()
    _thread = threading.Thread(target=_collect, args=(_stop,), name="forwarder-gc", daemon=True)
    _thread.start()


def restore() -> None:
    """Undo ``settle``: stop the clock, unfreeze, and let CPython collect by allocation again.

    For a process that embeds the forwarder and for the tests, which run it in-process.
    """
    global _stop, _thread
    if _thread is not None and _stop is not None:
        _stop.set()
        _thread.join()
    _stop = _thread = None
    gc.unfreeze()
    gc.enable()


def _collect(stop: threading.Event) -> None:
    ticks = 0
    while not stop.wait(PERIOD):
        ticks += 1
        gc.collect(2 if ticks % FULL == 0 else 1 if ticks % MIDDLE == 0 else 0)
