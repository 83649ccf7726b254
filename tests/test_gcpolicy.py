import gc

from forwarder import gcpolicy


def test_settle_freezes_start_up_objects_and_collects_young_objects_less_often():
    assert gc.get_freeze_count() == 0  # the autouse fixture undoes what a test did
    gcpolicy.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == gcpolicy.GEN0_THRESHOLD
    assert gc.isenabled()  # cycles are still collected
