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
