"""Garbage-collector settings for a process that moves events for a long time.

Every event allocates a few dozen short-lived containers (the record, its
normalized form, the ECS document); with CPython's default gen-0 threshold of 700
that is a young-generation collection every few dozen events, each of which also
walks whatever survived since the last one. Events hold no reference cycles, so
almost none of that work frees anything: reference counting already did. After
start-up (imports, configuration, clients) the objects that exist live until
exit; ``gc.freeze`` moves them out of the collector's sight so the rare full
collections no longer walk them.
"""

from __future__ import annotations

import gc

#: Young-generation threshold: a collection per this many net container allocations (a few
#: hundred events' worth) instead of CPython's 700. bench engine: 50,000 was no faster, and its
#: peak RSS over 1M events grew 15% where this one stays flat. Collecting by the clock instead
#: (automatic collection off, a thread collecting every second) took GC from 0.21-0.26 s to
#: 0.05-0.08 s per 100k events, but peak RSS over 1M events grew from 47 to 52-53 MiB.
GEN0_THRESHOLD = 10_000


def settle() -> None:
    """Collect once, freeze what start-up built, and collect the young generation less often.

    Called by ``siem-forwarder run`` once its configuration is loaded and before the
    first pass; cycles are still collected, only less often.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
