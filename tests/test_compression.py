"""forwarder.compression: whichever coder writes the body, any gzip reader gets the bytes back."""

from __future__ import annotations

import gzip
import importlib.util
import sys

from hypothesis import given, strategies as st

from forwarder import compression


def _without_isal():
    """compression as it loads where isal is missing (Splunk's Python)."""
    saved = sys.modules.get("isal")
    sys.modules["isal"] = None  # type: ignore[assignment]  # makes `from isal import igzip` fail
    try:
        spec = importlib.util.spec_from_file_location("compression_without_isal", compression.__file__)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        if saved is None:
            del sys.modules["isal"]
        else:
            sys.modules["isal"] = saved


FALLBACK = _without_isal()


def test_isal_is_used_when_installed_and_zlib_otherwise():
    assert compression._isal is not None  # a dependency of the package
    assert FALLBACK._isal is None


@given(st.binary(max_size=20_000) | st.text(max_size=5_000).map(str.encode), st.integers(1, 9))
def test_every_level_round_trips_through_the_standard_gzip_reader(data, level):
    for coder in (compression, FALLBACK):
        body = coder.gzip(data, level)
        assert body[:2] == b"\x1f\x8b" and body[4:8] == b"\0\0\0\0"  # gzip, no timestamp
        assert gzip.decompress(body) == data


def test_equal_bodies_compress_to_equal_bytes():
    data = b'{"time":1.0,"event":{"a":1}}\n' * 1000
    assert compression.gzip(data, 2) == compression.gzip(data, 2)
    assert len(compression.gzip(data, 2)) < len(data) // 10
