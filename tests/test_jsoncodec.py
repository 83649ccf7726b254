"""forwarder.jsoncodec: the streaming reader of vendor export/report files, with orjson and without it."""

from __future__ import annotations

import importlib.util
import io
import json
import sys

import pytest

from forwarder import jsoncodec


def _stdlib_codec():
    """jsoncodec as it loads where orjson is missing (Splunk's Python)."""
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = None  # type: ignore[assignment]  # makes `import orjson` fail
    try:
        spec = importlib.util.spec_from_file_location("jsoncodec_without_orjson", jsoncodec.__file__)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["orjson"]
        else:
            sys.modules["orjson"] = saved
    assert module._orjson is None
    return module


@pytest.fixture(params=["default", "stdlib"], scope="module")
def codec(request):
    return jsoncodec if request.param == "default" else _stdlib_codec()


class Trickle(io.StringIO):
    """Hands out at most three characters per read, to cross every boundary."""

    def read(self, size=-1):
        return super().read(3 if size is None or size < 0 else min(size, 3))


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ('[{"a": 1}, {"b": "x,]}"}]', [{"a": 1}, {"b": "x,]}"}]),
        ("  [ ]  ", []),
        ("", []),
        ("\n \n", []),
        ('{"a": 1}\n{"a": 2}\n\n{"a": 3}\n', [{"a": 1}, {"a": 2}, {"a": 3}]),
        ('{"a": 1}\r\n{"a": 2}', [{"a": 1}, {"a": 2}]),
        ('{"items": [{"a": 1}, {"a": 2}], "total": 2}', [{"a": 1}, {"a": 2}]),
        ('{\n  "items": [\n    {"a": 1},\n    {"a": 2}\n  ]\n}\n', [{"a": 1}, {"a": 2}]),
        ('{\n  "a": 1\n}', [{"a": 1}]),
        ('{"items": [{"a": 1}]}\n{"items": [{"a": 2}]}', [{"items": [{"a": 1}]}, {"items": [{"a": 2}]}]),
        ('{"items": 3}', [{"items": 3}]),
        ('[12345, "s"]', [12345, "s"]),
    ],
)
def test_layouts_stream_across_read_boundaries(codec, text, rows):
    assert list(codec.iter_values(Trickle(text), envelope="items")) == rows
    assert list(codec.iter_values(io.StringIO(text), envelope="items")) == rows


def test_without_an_envelope_the_wrapper_object_is_a_record(codec):
    text = '{"items": [{"a": 1}, {"a": 2}], "total": 2}'
    assert list(codec.iter_values(io.StringIO(text))) == [{"items": [{"a": 1}, {"a": 2}], "total": 2}]
    with pytest.raises(ValueError, match="line 1"):
        list(codec.iter_values(io.StringIO('{\n  "items": []\n}')))


@pytest.mark.parametrize(
    "text",
    [
        '[{"a": 1} {"a": 2}]',
        '[{"a": 1},',
        '[{"a": 1}, {"a": 2}',
        "[",
        "[1,]",
        '[{"a": 1}] x',
        '{"a": ',
        '{\n  "a": 1\n}\n{"b": 2}',
    ],
)
def test_malformed_text_raises_value_error(codec, text):
    with pytest.raises(ValueError):
        list(codec.iter_values(Trickle(text), envelope="items"))
    with pytest.raises(ValueError):
        list(codec.iter_values(io.StringIO(text)))


def test_a_bad_line_is_named_by_its_number_and_the_stream_goes_on(codec):
    values = list(codec.iter_values(io.StringIO('\n{"a": 1}\n\n{"a": 2\n{"a": 3}\n')))
    assert values[0] == {"a": 1} and values[2] == {"a": 3}
    assert "line 4 is not JSON" in str(values[1]) and values[1].text == '{"a": 2'


def test_rows_are_yielded_before_the_file_is_read_to_the_end(codec):
    fh = Trickle('[{"a": 1}, {"a": 2}, ' + ", ".join('{"pad": "%s"}' % ("x" * 50) for _ in range(1000)) + "]")
    rows = codec.iter_values(fh)
    assert next(rows) == {"a": 1}
    assert fh.tell() < 100  # only what the first row needed was read


def test_arrays_and_json_lines_larger_than_the_read_chunk(codec, tmp_path):
    records = [{"n": i, "text": "x" * 50, "nested": {"list": [1, 2.5, None]}} for i in range(3000)]
    array = tmp_path / "array.json"  # ~250 KB: values straddle the 64 KB read chunks
    array.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
    with array.open(encoding="utf-8") as fh:
        assert list(codec.iter_values(fh)) == records
    lines = tmp_path / "lines.json"
    lines.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    with lines.open(encoding="utf-8") as fh:
        assert list(codec.iter_values(fh)) == records


def test_numbers_are_not_cut_at_a_read_boundary(codec):
    assert list(codec.iter_values(Trickle("[1, 22, 333]"))) == [1, 22, 333]
    assert list(codec.iter_values(Trickle("1\n22\n333"))) == [1, 22, 333]


def test_non_string_keys_are_written_as_text_in_both_forms():
    """orjson refuses them on the fast first try; the retry writes them as the standard library would."""
    value = {1: "a", "b": {2.5: [True, None]}, "c": 3}
    assert jsoncodec.dumps(value) == b'{"1":"a","b":{"2.5":[true,null]},"c":3}'
    assert jsoncodec.canonical(value) == b'{"1":"a","b":{"2.5":[true,null]},"c":3}'
    assert jsoncodec.canonical({"z": 1, 0: {"y": 2, "x": 1}}) == b'{"0":{"x":1,"y":2},"z":1}'
