"""Durable spool for the bodies of destructive reads (Carbon Black Cloud's ``_queue``).

A vendor that forgets records once it has returned them hands us the only copy.
So the raw response body is written to ``<dir>/<sequence>.body`` and fsynced (the
file, then the directory) before anything parses it. The file is removed only
after the checkpoint of the page built from it is stored (``Page.on_committed``);
files still present when the next pass starts are replayed first, oldest first.
A replayed file may duplicate events a sink already accepted; ids are
deterministic, so targets that deduplicate drop them.

What no spool can cover: the milliseconds between the body arriving in memory
and the fsync returning, and a response lost in transit (the vendor cleared
those records when it sent them). A reconciling search over the same period is
the only remedy for those.

Test hook: with ``FORWARDER_TEST_KILL_AFTER_SPOOL=N`` in the environment the
process SIGKILLs itself right after its N-th spool fsync, so the crash test can
die "right after a queue read" deterministically. Never set it otherwise.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from forwarder.durable import create_synced, fsync_dir
from forwarder.errors import SourceError

SUFFIX = ".body"
BAD_SUFFIX = ".unparseable"
_KILL_ENV = "FORWARDER_TEST_KILL_AFTER_SPOOL"
_fsyncs = 0


class Spool:
    """A directory of fsynced response bodies, named by a sequence number so names sort by age."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"spool {self.directory}: cannot create: {exc.strerror}") from None
        # Past set-aside bodies too: a new body must never take (and later overwrite) a kept one's name.
        self._next = max((_sequence(p) for p in self.directory.glob("*")), default=0) + 1

    def check_writable(self) -> None:
        """Raise ``SourceError`` if bodies cannot be written (call before a destructive read)."""
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise SourceError(f"spool {self.directory}: not writable; refusing to read a destructive queue")

    def write(self, body: bytes) -> Path:
        """Store ``body`` durably and return its path (``SourceError`` if the disk refuses)."""
        path = self.directory / f"{self._next:012d}{SUFFIX}"
        self._next += 1
        try:
            create_synced(path, body)
            fsync_dir(self.directory)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise SourceError(f"spool {self.directory}: cannot write {path.name}: {exc.strerror}") from None
        _test_kill_hook()
        return path

    def pending(self) -> list[Path]:
        """Bodies not yet committed, oldest first."""
        return sorted(self.directory.glob(f"*{SUFFIX}"), key=_sequence)

    @staticmethod
    def read(path: Path) -> bytes:
        """The stored body."""
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SourceError(f"spool: cannot read {path}: {exc.strerror}") from None

    @staticmethod
    def remove(path: Path) -> None:
        """Forget a body whose events are committed."""
        path.unlink(missing_ok=True)

    @staticmethod
    def set_aside(path: Path) -> Path:
        """Rename a body that cannot be parsed so it is kept for inspection but not replayed again."""
        target = path.with_suffix(BAD_SUFFIX)
        os.replace(path, target)
        return target


def _sequence(path: Path) -> int:
    try:
        return int(path.name.split(".", 1)[0])
    except ValueError:
        return 0


def _test_kill_hook() -> None:
    """The crash test's hook: see the module docstring."""
    global _fsyncs
    limit = os.environ.get(_KILL_ENV)
    if limit:
        _fsyncs += 1
        if _fsyncs >= int(limit):
            os.kill(os.getpid(), signal.SIGKILL)
