"""The hot path's output, byte for byte: every sink's bytes for fixed records of every vendor.

A change to normalization, ECS, the HEC envelope, the bulk body or JSON encoding that
alters one byte fails here; see ``tests/golden_data.py`` for how the goldens are made
and rewritten on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from golden_data import GOLDEN, ODD, OUTPUTS, VENDORS, records, render


@pytest.mark.parametrize("vendor", VENDORS)
def test_outputs_are_byte_identical_to_the_goldens(vendor: str, tmp_path: Path) -> None:
    produced = render(vendor, tmp_path)
    for name in OUTPUTS:
        expected = (GOLDEN / f"{vendor}.{name}").read_bytes()
        got = produced[name]
        if got != expected:
            at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            pytest.fail(f"{vendor}.{name} differs from the golden at byte {at}: "
                        f"{got[max(0, at - 80):at + 80]!r} != {expected[max(0, at - 80):at + 80]!r}")


@pytest.mark.parametrize("vendor", VENDORS)
def test_goldens_hold_every_record(vendor: str) -> None:
    """Each golden record, odd ones included, is an event or a rejection: none vanished."""
    lines = (GOLDEN / f"{vendor}.ndjson").read_bytes().count(b"\n")
    rejected = (GOLDEN / f"{vendor}.rejected").read_bytes().count(b"\n")
    assert rejected >= 1 and lines + rejected == len(records(vendor)) > len(ODD[vendor])
