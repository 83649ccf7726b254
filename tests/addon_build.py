"""``packaging/build.py`` as a module, for the add-on tests.

Loaded by path: the folder's name would shadow the ``packaging`` library on import.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "packaging" / "build.py"
_spec = importlib.util.spec_from_file_location("splunk_addon_build", _PATH)
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)
