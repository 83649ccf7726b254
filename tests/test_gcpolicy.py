import gc
import threading
import weakref

from forwarder import gcpolicy


class _Node:
    pass


def test_settle_freezes_start_up_objects_and_collects_by_the_clock(monkeypatch):
    assert gc.get_freeze_count() == 0 and gc.isenabled()  # the autouse fixture undid what a test did
    monkeypatch.setattr(gcpolicy, "PERIOD", 0.01)
    gcpolicy.settle()
    assert gc.get_freeze_count() > 0
    assert not gc.isenabled()  # no collection per 700 allocations...
    freed = threading.Event()
    node = _Node()
    node.me = node  # a cycle: only the cyclic collector can free it
    weakref.finalize(node, freed.set)
    del node
    assert freed.wait(30)  # ...but cycles are still freed, by the collector thread


def test_settle_twice_starts_one_collector_and_restore_undoes_it():
    gcpolicy.settle()
    gcpolicy.settle()
    assert [t.name for t in threading.enumerate()].count("forwarder-gc") == 1
    gcpolicy.restore()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert "forwarder-gc" not in [t.name for t in threading.enumerate()]
