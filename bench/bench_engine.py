"""End-to-end engine benchmark: simulator → source → normalization → ECS → file sink.

For 100k and 1M Crusoe records it prints events/s and peak RSS of the forwarder,
beside the orjson floor (``loads`` of the pages served + ``dumps`` of the ECS documents
made of them: the least any tool producing this output from this input does) and the ratio. Each size runs in a fresh process (so peak RSS is its own); the
simulator runs in a forked child so it does not share the forwarder's core.

Two rates are printed: per wall-clock second (bounded by how fast the simulator
can generate records) and per CPU second of the forwarder process (what one core
of the forwarder sustains, the figure the target is about).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import verdict

SIZES = (100_000, 1_000_000)
RSS_GOAL_MIB = 47.0  # Grove's peak RSS in the measurement


def _serve(records: int, conn) -> None:  # runs in the simulator child
    from forwarder.simulators.crusoe import CrusoeSimulator

    sim = CrusoeSimulator(records=records, span=24 * 3600.0).start()
    table, env = sim.demo_source(records)
    conn.send((table, env))
    sim.serve_forever()


def _floor(records: int) -> float:
    """The issue's floor for this output, records/s on one core: ``orjson.loads`` of the pages the
    simulator serves plus ``orjson.dumps`` of the ECS documents made from them (a sample of up to
    20k records; the documents are built untimed, through the real source and mapping)."""
    from forwarder import jsoncodec
    from forwarder.config import parse_config
    from forwarder.ecs import to_ecs
    from forwarder.pipeline import normalize_records
    from forwarder.runner import open_all
    from forwarder.simulators.crusoe import CrusoeSimulator

    sim = CrusoeSimulator(records=records, span=24 * 3600.0).start()
    saved = dict(os.environ)
    try:
        table, env = sim.demo_source(records)
        os.environ.update(env)  # the source reads its secret from there
        sample = min(records, 20_000)
        items = [sim.record(i) for i in range(sample)]
        pages = [jsoncodec.dumps({"items": items[i:i + 1000], "next_page_token": "t"}) for i in range(0, sample, 1000)]
        with tempfile.TemporaryDirectory() as tmp:
            config = parse_config({"state": {"dir": tmp}, "source": [table], "sink": [{"name": "f", "type": "file", "path": f"{tmp}/o"}]})
            store, sinks, (source,) = open_all(config, config.sources)
            docs = [to_ecs(event) for event in normalize_records(source, items)[0]]
            for sink in sinks:
                sink.close()
            source.close()
            store.close()
    finally:
        sim.stop()
        os.environ.clear()
        os.environ.update(saved)
    began = time.process_time()
    for page in pages:
        jsoncodec.loads(page)
    for doc in docs:
        jsoncodec.dumps(doc)
    return sample / (time.process_time() - began)


def child(records: int) -> None:
    """Run one size and print one result line (key=value)."""
    from forwarder import gcpolicy
    from forwarder.config import parse_config
    from forwarder.runner import make_pipeline, open_all
    from forwarder.timeutil import now

    parent, kid = multiprocessing.Pipe()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(records, kid), daemon=True)
    server.start()
    table, env = parent.recv()
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({
            "state": {"dir": tmp},
            "source": [{**table, "lookback": "2d", "lag": 0, "limit": 1000, "window": "6h"}],
            "sink": [{"name": "file", "type": "file", "path": f"{tmp}/out.ndjson", "max_bytes": 1 << 30}],
        })
        store, sinks, (source,) = open_all(config, config.sources)
        pipeline = make_pipeline(config, sinks, store)
        if os.environ.get("BENCH_GC") != "default":
            gcpolicy.settle()  # as `siem-forwarder run` does
        import datetime as dt

        end = now()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = pipeline.run_pass(source, end - dt.timedelta(days=2), end)
        pipeline.close()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        size = Path(f"{tmp}/out.ndjson").stat().st_size
    server.terminate()
    if result.error or result.events != records:
        raise SystemExit(f"benchmark run failed: {result.error or result.events} of {records}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"events={records} wall_s={wall:.2f} cpu_s={cpu:.2f} wall_eps={records / wall:.0f} "
          f"cpu_eps={records / cpu:.0f} peak_rss_mib={peak_kib / 1024:.1f} out_mib={size / 2**20:.1f}", flush=True)


def main() -> None:
    rows = []
    for n in SIZES:
        out = subprocess.run([sys.executable, "-m", "bench.bench_engine", str(n)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr.strip(), file=sys.stderr)
            raise SystemExit(1)
        rows.append(dict(kv.split("=") for kv in out.stdout.split()))
    floor = _floor(SIZES[0])
    print(f"orjson floor (loads of the served pages + dumps of their ECS documents, one core): {floor:,.0f} records/s")
    print(f"{'events':>9} {'wall s':>7} {'ev/s wall':>10} {'ev/s cpu':>10} {'ratio cpu/floor':>16} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{int(r['events']):>9,} {float(r['wall_s']):>7.1f} {float(r['wall_eps']):>10,.0f} "
              f"{float(r['cpu_eps']):>10,.0f} {float(r['cpu_eps']) / floor:>16.2f} {float(r['peak_rss_mib']):>13.1f}")
    growth = float(rows[-1]["peak_rss_mib"]) / float(rows[0]["peak_rss_mib"]) - 1
    print(f"peak RSS growth {SIZES[0]:,} → {SIZES[-1]:,} events: {growth:+.1%}")
    ratio = min(float(r["cpu_eps"]) for r in rows) / floor
    peak = max(float(r["peak_rss_mib"]) for r in rows)
    print(f"targets (issue 17): within 2x of the floor (ratio >= 0.50): {verdict(ratio, 0.5)}; "
          f"peak RSS <= {RSS_GOAL_MIB:.0f} MiB: {verdict(peak, RSS_GOAL_MIB, at_most=True)}; "
          f"growth < +10%: {verdict(growth, 0.10, at_most=True)}")


if __name__ == "__main__":
    child(int(sys.argv[1]))
