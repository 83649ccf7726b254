"""forwarder.durable: every byte written even when os.write takes less, then fsynced."""

from __future__ import annotations

import os

from forwarder import durable


def test_short_writes_are_continued_and_the_file_is_fsynced(tmp_path, monkeypatch):
    real_write, synced = os.write, []
    monkeypatch.setattr(durable.os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    monkeypatch.setattr(durable.os, "fsync", synced.append)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        durable.write_synced(fd, b"0123456789\n")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"0123456789\n"
    assert synced == [fd]


def test_directory_fsync(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(durable.os, "fsync", synced.append)
    durable.fsync_dir(tmp_path)
    assert len(synced) == 1
