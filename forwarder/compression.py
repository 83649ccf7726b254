"""gzip request bodies: the one place the HEC and Logstash sinks compress.

Compression is the largest single cost per event on the way into Splunk: zlib
spends about 8.5 µs on each 1.8 KB HEC event, more than normalizing it. ISA-L
(the ``isal`` package, Intel's storage acceleration library) writes the same
gzip format six times faster at the size of zlib's level 2 (bench/bench_splunk_hec.py
``gzip_levels``), so it is used when it is installed (a dependency of the
package); where it cannot be (Splunk's own Python), the standard library's zlib
writes the body instead. Either way the receiver sees ordinary gzip.

``level`` is zlib's scale, 1 fastest to 9 smallest. ISA-L has levels 0-3:
zlib 1-2 map to ISA-L 1, 3-5 to 2 and 6-9 to 3.
"""

from __future__ import annotations

import gzip as _stdlib_gzip

try:  # pragma: no cover - exercised by whichever interpreter runs the tests
    from isal import igzip as _isal
except ImportError:  # pragma: no cover
    _isal = None


def gzip(data: bytes, level: int) -> bytes:
    """``data`` as one gzip member (no timestamp in the header, so equal bodies compress equally)."""
    if _isal is not None:
        return _isal.compress(data, 1 if level <= 2 else 2 if level <= 5 else 3, mtime=0)
    return _stdlib_gzip.compress(data, level, mtime=0)
