from forwarder import jsoncodec
from forwarder.config import parse_config
from forwarder.event import Actor, AuditEvent, Endpoint
from forwarder.sinks.file import FileSink


def _events(n, start=0):
    return [AuditEvent.build(vendor="crusoe", product="audit", raw={"i": i}, timestamp=1700000000 + i,
                             action="login", actor=Actor(name=f"u{i}"), source=Endpoint(ip="10.0.0.1", port=443))
            for i in range(start, start + n)]


def _sink(tmp_path, **extra):
    cfg = parse_config({"sink": [{"name": "f", "type": "file", "path": str(tmp_path / "out.ndjson"), **extra}]})
    return FileSink(cfg.sinks[0])


def test_writes_ecs_ndjson(tmp_path):
    sink = _sink(tmp_path)
    assert sink.send(_events(3)) == []
    sink.close()
    docs = [jsoncodec.loads(line) for line in (tmp_path / "out.ndjson").read_bytes().splitlines()]
    assert [d["event"]["original"] for d in docs] == ['{"i":0}', '{"i":1}', '{"i":2}']
    assert docs[0]["@timestamp"] == "2023-11-14T22:13:20.000Z"
    assert docs[0]["source"] == {"ip": "10.0.0.1", "port": 443}
    assert docs[0]["data_stream"]["dataset"] == "forwarder_crusoe.audit"


def test_rotation_keeps_n_files_and_loses_nothing_recent(tmp_path):
    sink = _sink(tmp_path, max_bytes=2048, keep=2)
    for i in range(20):
        sink.send(_events(3, i * 3))
    sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["out.ndjson", "out.ndjson.1", "out.ndjson.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 2048
    newest = [jsoncodec.loads(l)["event"]["original"] for l in (tmp_path / "out.ndjson").read_bytes().splitlines()]
    assert newest[-1] == '{"i":59}'


def test_a_half_written_tail_is_cut_on_reopen(tmp_path):
    sink = _sink(tmp_path)
    sink.send(_events(2))
    sink.close()
    path = tmp_path / "out.ndjson"
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"@timestamp":"2023-11-1')  # a crash mid-write
    sink = _sink(tmp_path)
    sink.send(_events(1, 2))
    sink.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and all(jsoncodec.loads(l) for l in lines)


def test_one_fsync_covers_many_sends_and_close_syncs_the_rest(tmp_path, monkeypatch):
    import os

    from forwarder.sinks import file as file_sink

    synced = []
    real = os.fsync
    monkeypatch.setattr(file_sink.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    sink = _sink(tmp_path)
    for i in range(30):
        sink.send(_events(1000 if i else 10, i * 1000))
        if sink.sync_due():
            sink.sync()
    assert len(synced) == 2  # at 10,010 and 20,010 events: not one per send
    assert not sink.sync_due()
    sink.close()
    assert len(synced) == 3  # closing made the last 9,000 durable


def test_sync_is_due_after_8_mib_even_with_few_events(tmp_path):
    sink = _sink(tmp_path)
    big = AuditEvent.build(vendor="crusoe", product="audit", raw={"blob": "x" * (1 << 20)}, timestamp=1700000000)
    for _ in range(7):
        sink.send([big])
    assert not sink.sync_due()
    sink.send([big, big])
    assert sink.sync_due()
    sink.sync()
    assert not sink.sync_due()
    sink.close()
