"""The ``siem-forwarder`` command line.

Every ``ForwarderError`` becomes one line on standard error and an exit code:
0 done, 1 failed (nothing committed past the failure), 2 bad config or usage,
3 done but some records were dead-lettered (see ``<state dir>/deadletter.ndjson``),
4 ``coverage`` found a gap or a count mismatch.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from forwarder import __version__, gcpolicy, registry
from forwarder.config import Config, load_config
from forwarder.errors import ConfigError, ForwarderError
from forwarder.logs import setup_logging
from forwarder.pipeline import PassResult, count_events
from forwarder.secrets import redact
from forwarder.statelock import hold_state_dir
from forwarder.timeutil import format_time, parse_time

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DEAD_LETTERS, EXIT_INCOMPLETE = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 2 with one line, like config errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"siem-forwarder: error: {message} (see --help)\n")


def _time_arg(value: str) -> Any:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs)."""
    p = _Parser(prog="siem-forwarder", description="Forward cloud vendors' audit logs to your SIEM.")
    p.add_argument("--version", action="version", version=f"siem-forwarder {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", "-c", default="forwarder.toml", help="TOML config file (default: forwarder.toml)")
        return sp

    run = with_config(sub.add_parser("run", help="forward continuously (or one pass with --once)"))
    run.add_argument("--once", action="store_true", help="one pass of every source, then exit")
    run.add_argument("--source", help="only this source (with --once)")
    run.add_argument("--listen", metavar="HOST:PORT", help="serve /metrics, /healthz and /readyz here (overrides [server] listen)")
    run.set_defaults(func=cmd_run)

    for name, helptext, func in (
        ("backfill", "read a past time range of one source into the sinks (resumable)", cmd_backfill),
        ("export", "fetch a time range of one source straight into a file (no checkpoint)", cmd_export),
    ):
        sp = with_config(sub.add_parser(name, help=helptext))
        sp.add_argument("--source", required=True, help="source name")
        gaps = name == "backfill"
        sp.add_argument("--from", dest="start", required=not gaps, type=_time_arg, help="start (inclusive), e.g. 2026-01-01T00:00:00Z")
        sp.add_argument("--to", dest="end", required=not gaps, type=_time_arg, help="end (exclusive)")
        if name == "export":
            sp.add_argument("--format", choices=("ndjson", "csv", "xlsx"), default="ndjson")
            sp.add_argument("--output", "-o", required=True, type=Path, help="file to write")
        else:
            sp.add_argument("--gaps", action="store_true", help="read exactly the gaps `coverage` reports (within --from/--to if given)")
            sp.add_argument("--no-progress", action="store_true", help="no progress bar")
        sp.set_defaults(func=func)

    cov = with_config(sub.add_parser("coverage", help="prove completeness: covered windows, gaps, count mismatches (exit 4 if any)"))
    cov.add_argument("--source", help="only this source")
    cov.add_argument("--from", dest="start", type=_time_arg, help="only from this time (inclusive)")
    cov.add_argument("--to", dest="end", type=_time_arg, help="only up to this time (exclusive)")
    cov.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    cov.set_defaults(func=cmd_coverage)

    chk = with_config(sub.add_parser("check", help="test credentials and reachability without consuming anything"))
    chk.set_defaults(func=cmd_check)

    init = sub.add_parser("init", help="write a commented first configuration for the chosen vendors and targets")
    init.add_argument("--source", action="append", choices=sorted(registry.SOURCES), metavar="TYPE",
                      help=f"a vendor source (repeatable; default: all of {', '.join(sorted(registry.SOURCES))})")
    init.add_argument("--sink", action="append", choices=sorted(registry.SINKS), metavar="TYPE",
                      help=f"a target (repeatable; one of {', '.join(sorted(registry.SINKS))}; default: file)")
    init.add_argument("--output", "-o", default="forwarder.toml", help="file to write, or - for standard output (default: forwarder.toml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)

    state = sub.add_parser("state", help="show or reset checkpoints")
    state_sub = state.add_subparsers(dest="state_command", required=True, parser_class=_Parser)
    show = with_config(state_sub.add_parser("show", help="list checkpoints (and, with [state] url, lease owners, epochs, expiry and lag)"))
    show.set_defaults(func=cmd_state_show)
    release = with_config(state_sub.add_parser("release", help="free a stuck lease by hand ([state] url only; its holder can no longer commit)"))
    release.add_argument("name", help="source name")
    release.set_defaults(func=cmd_state_release)
    reset = with_config(state_sub.add_parser("reset", help="forget one checkpoint (the next run starts from lookback)"))
    reset.add_argument("name", help="checkpoint name (a source name, or a backfill key from `state show`)")
    reset.set_defaults(func=cmd_state_reset)

    demo = sub.add_parser("demo", help="run every vendor simulator end to end into files (no credentials)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory (default: demo-output)")
    demo.add_argument("--events", type=int, default=1000, help="about this many records per vendor (default: 1000)")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("simulate", help="run one vendor simulator in the foreground")
    sim.add_argument("vendor", help=f"one of: {', '.join(sorted(registry.SIMULATORS)) or 'none yet'}")
    sim.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    sim.add_argument("--seed", type=int, default=42, help="data seed")
    sim.add_argument("--records", type=int, default=1000, help="records it serves (default: 1000)")
    sim.set_defaults(func=cmd_simulate)

    setup = sub.add_parser("setup", help="install target-side objects (templates, dashboards)")
    setup_sub = setup.add_subparsers(dest="setup_command", required=True, parser_class=_Parser)
    from forwarder.kibana.setup import add_command as add_setup_kibana

    add_setup_kibana(setup_sub)
    es = with_config(setup_sub.add_parser("elasticsearch", help="install ILM policies and index templates for the elasticsearch sinks (idempotent)"))
    es.add_argument("--sink", help="only this sink (default: every elasticsearch sink)")
    es.set_defaults(func=cmd_setup_elasticsearch)
    st = with_config(setup_sub.add_parser("state", help="create or migrate the PostgreSQL schema of [state] url (idempotent)"))
    st.set_defaults(func=cmd_setup_state)
    return p


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    _log_as(config)
    return config


def _log_as(config: Config) -> None:
    lc = config.log
    try:
        setup_logging(lc["level"], lc["format"], lc["file"], lc["max_bytes"], lc["backups"])
    except OSError as exc:
        raise ConfigError("log.file", f"cannot write {lc['file']}: {exc.strerror}") from None


def _exit_for(results: list[PassResult]) -> int:
    if any(r.error for r in results):
        return EXIT_FAILED
    if any(r.dead_letters for r in results):
        return EXIT_DEAD_LETTERS
    return EXIT_OK


def _summary(results: list[PassResult], out: Any = None) -> None:
    out = out or sys.stderr
    for r in results:
        line = f"{r.source}: {count_events(r)}, {r.dead_letters} dead-lettered in {r.seconds:.1f}s"
        if r.error:
            line += f" — FAILED: {r.error}"
        print(line, file=out)


def cmd_run(args: argparse.Namespace) -> int:
    from forwarder import runner

    from forwarder.server import StatusServer, parse_listen

    config = _load(args)
    if args.source and not args.once:
        raise ConfigError("--source", "only works with --once")
    if args.listen:
        parse_listen(args.listen, "--listen")
    listen = args.listen or config.server["listen"]
    with hold_state_dir(config.state_dir):
        server = StatusServer(listen).start() if listen else None
        gcpolicy.settle()
        try:
            if server is not None:
                server.configured([s.name for s in config.sinks])
                logging.getLogger("forwarder").info("serving /metrics, /healthz and /readyz on %s", server.url)
            if not args.once:

                def applied(new: Config) -> None:
                    _log_as(new)
                    if server is not None:
                        server.configured([s.name for s in new.sinks])

                return EXIT_OK if runner.run_daemon(config, on_config=applied) else EXIT_FAILED
            progress = LiveProgress()
            try:
                results = runner.run_once(config, only=args.source, progress=progress)
            finally:
                progress.close()
        finally:
            if server is not None:
                server.close()
    _summary(results)
    return _exit_for(results)


class _ProgressBar:
    """A tqdm bar over the backfill's time range, moved by each page's position."""

    def __init__(self, name: str, start: Any, end: Any) -> None:
        from tqdm import tqdm

        self.start, self.end = start, end
        self.done = self.events = 0
        self.bar = tqdm(total=int((end - start).total_seconds()), unit="s", desc=f"backfill {name}",
                        file=sys.stderr, dynamic_ncols=True)

    def __call__(self, page: Any, count: int) -> None:
        self.events += count
        if page.position is not None:
            reached = int((min(page.position, self.end) - self.start).total_seconds())
            if reached > self.done:
                self.bar.update(reached - self.done)
                self.done = reached
        self.bar.set_postfix(events=self.events, refresh=False)

    def close(self) -> None:
        self.bar.close()


class LiveProgress:
    """On a terminal, one line per source: events so far and the time its reading reached. Silent otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bars: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, source: str, page: Any, count: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        with self._lock:
            bar = self.bars.get(source)
            if bar is None:
                bar = self.bars[source] = tqdm(desc=source, unit=" events", position=len(self.bars), file=self.stream, leave=True)
            bar.update(count)
            if page.position is not None:
                bar.set_postfix_str(f"reached {format_time(page.position, 0)}")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_backfill(args: argparse.Namespace) -> int:
    from forwarder import runner

    if not args.gaps and (args.start is None or args.end is None):
        raise ConfigError("--from/--to", "are required (or use --gaps)")
    config = _load(args)
    if not args.gaps:
        ranges = [(args.start, args.end)]
    else:
        ranges = [(g.start, g.end) for g in runner.coverage_report(config, args.source, args.start, args.end)[0].gaps]
        print(f"{args.source}: {len(ranges)} gaps to read", file=sys.stderr)
    results = []
    with hold_state_dir(config.state_dir):
        for start, end in ranges:
            bar = None if args.no_progress else _ProgressBar(args.source, start, end)
            try:
                results.append(runner.backfill(config, args.source, start, end, bar))
            finally:
                if bar is not None:
                    bar.close()
            if results[-1].error:
                break
    _summary(results)
    return _exit_for(results)


def cmd_coverage(args: argparse.Namespace) -> int:
    from forwarder import coverage, jsoncodec, runner

    config = _load(args)
    reports = runner.coverage_report(config, args.source, args.start, args.end)
    clean = all(r.clean for r in reports)
    if args.json:
        print(jsoncodec.dumps_str({"clean": clean, "sources": [r.to_dict() for r in reports]}))
    else:
        print(coverage.render(reports))
    return EXIT_OK if clean else EXIT_INCOMPLETE


def cmd_export(args: argparse.Namespace) -> int:
    from forwarder import runner

    config = _load(args)
    progress = LiveProgress()
    try:
        with hold_state_dir(config.state_dir):  # dead letters go to the state directory
            result = runner.export(config, args.source, args.start, args.end, args.format, args.output, progress)
    finally:
        progress.close()
    _summary([result])
    print(f"wrote {result.events} events to {args.output}", file=sys.stderr)
    return _exit_for([result])


def cmd_check(args: argparse.Namespace) -> int:
    import tomllib

    from forwarder import initconfig, runner

    try:
        open_items = initconfig.todo(tomllib.loads(Path(args.config).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        open_items = []  # _load reports these in its own words
    if open_items:
        for key, what in open_items:
            print(f"TODO {key}: {what}")
        print(f"{len(open_items)} values to fill in before `check` can test anything")
        return EXIT_USAGE
    config = _load(args)
    failed = False
    for what, ok, detail in runner.check(config):
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
        failed = failed or not ok
    return EXIT_FAILED if failed else EXIT_OK


def cmd_state_show(args: argparse.Namespace) -> int:
    from forwarder import jsoncodec
    from forwarder.state import open_store

    config = _load(args)
    store = open_store(config)
    try:
        if hasattr(store, "leases"):
            _show_leases(store.leases())
            return EXIT_OK
        rows = store.all()
        if not rows:
            print(f"no checkpoints in {store.path}")
        for name, cursor, updated in rows:
            print(f"{name}\t{updated}\t{jsoncodec.dumps_str(cursor)}")
    finally:
        store.close()
    return EXIT_OK


def _show_leases(rows: list[dict[str, Any]]) -> None:
    """One line per source: lease owner, epoch, expiry, lag behind now, cursor."""
    from forwarder import jsoncodec
    from forwarder.timeutil import format_time

    if not rows:
        print("no sources in the database yet")
    print("source\towner\tepoch\tlease\tlag\tcursor")
    for r in rows:
        if r["live"]:
            lease = f"until {format_time(r['expires'], 0)} ({(r['expires'] - r['now']).total_seconds():.0f}s left)"
        else:
            lease = "expired" if r["owner"] else "free"
        cursor = r["cursor"]
        until = cursor.get("until") if isinstance(cursor, dict) else None
        try:
            lag = f"{(r['now'] - parse_time(until)).total_seconds():.0f}s" if until else "-"
        except ValueError:
            lag = "-"
        if lag == "-" and r["updated_at"] is not None:
            lag = f"{(r['now'] - r['updated_at']).total_seconds():.0f}s since commit"
        shown = jsoncodec.dumps_str(cursor) if cursor is not None else "-"
        print(f"{r['name']}\t{r['owner'] or '-'}\t{r['epoch']}\t{lease}\t{lag}\t{shown}")


def cmd_state_release(args: argparse.Namespace) -> int:
    from forwarder.state import open_store

    config = _load(args)
    store = open_store(config)
    try:
        if not hasattr(store, "force_release"):
            raise ConfigError("state.url", "leases exist only with a shared PostgreSQL store ([state] url)")
        released = store.force_release(args.name)
    finally:
        store.close()
    if released is None:
        raise ConfigError("name", f"no source named {args.name!r} in the database (see `state show`)")
    owner, epoch = released
    print(f"released {args.name} (was held by {owner or 'nobody'}; epoch now {epoch}, so that holder can no longer commit)")
    return EXIT_OK


def cmd_state_reset(args: argparse.Namespace) -> int:
    from forwarder import runner

    config = _load(args)
    with hold_state_dir(config.state_dir):
        found = runner.reset_checkpoint(config, args.name)
    if not found:
        raise ConfigError("name", f"no checkpoint named {args.name!r} (see `state show`)")
    print(f"reset {args.name}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from forwarder.demo import run_demo

    setup_logging("warning")
    if args.events < 1:
        raise ConfigError("--events", "must be at least 1")
    results = run_demo(args.out, args.events, sys.stdout)
    return EXIT_FAILED if any(r.error for r in results) else EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    import tomllib

    from forwarder.initconfig import render, secrets_needed

    text = render(args.source or sorted(registry.SOURCES), args.sink or ["file"])
    if args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.output)
    if out.exists() and not args.force:
        raise ConfigError("--output", f"{out} exists (use --force to overwrite it)")
    out.write_text(text, encoding="utf-8")
    names = secrets_needed(tomllib.loads(text))
    print(f"wrote {out}: replace its FILL IN values" + (f", export {', '.join(names)}" if names else "")
          + f", then run `siem-forwarder check -c {out}`")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    import shlex

    from forwarder.initconfig import table_lines

    if args.records < 0:
        raise ConfigError("--records", "must be 0 or more")
    sim = registry.load("simulator", args.vendor)(port=args.port, seed=args.seed)
    sim.start()
    table, env = sim.demo_source(args.records)
    lines = [f"# {args.vendor} simulator listening on {sim.url}, serving {args.records} records.",
             "# Its secret is a throwaway, valid only against this simulator. In your shell:"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    lines += ["# and in your config:", *table_lines("source", table), "# serving until Ctrl-C"]
    print("\n".join(lines), flush=True)
    sim.serve_forever()
    return EXIT_OK


def cmd_setup_elasticsearch(args: argparse.Namespace) -> int:
    from forwarder.sinks.elasticsearch import setup

    for line in setup(_load(args), args.sink):
        print(line)
    return EXIT_OK


def cmd_setup_state(args: argparse.Namespace) -> int:
    from forwarder.state_postgres import migrate

    config = _load(args)
    if not config.state.get("url"):
        raise ConfigError("state.url", "is not set: the SQLite store in [state] dir needs no setup")
    for line in migrate(config.state["url"], config.state.get("password")):
        print(line)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command and turn errors into one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ForwarderError as exc:
        print(f"siem-forwarder: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("siem-forwarder: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        logging.getLogger("forwarder").debug("OS error", exc_info=True)
        print(f"siem-forwarder: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug: still one line (the traceback is logged at debug level)
        logging.getLogger("forwarder").debug("unexpected error", exc_info=True)
        text = redact(str(exc)).splitlines()[0][:300] if str(exc) else ""
        print(f"siem-forwarder: error: unexpected {type(exc).__name__}: {text}", file=sys.stderr)
        return EXIT_FAILED
