"""Run every ``bench/bench_*.py`` module's ``main()`` (or only the names given)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    chosen = [n.replace("-", "_") for n in argv] or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    if not argv:  # the side-by-side run installs another tool and takes minutes: only on request
        chosen.remove("vs_grove")
    for name in chosen:
        print(f"== bench {name}", flush=True)
        importlib.import_module(f"bench.bench_{name}").main()
    return 0


raise SystemExit(main(sys.argv[1:]))
