"""The HEC sink's directly assembled envelope bytes equal ``jsoncodec.dumps(hec_event(...))``.

The sink splices cached metadata bytes, the ``time`` float and the event body
instead of dumping an envelope dict; these tests hold it to the dict's bytes for
any timestamp, metadata and event content (the goldens cover the real records).
"""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given, settings
from hypothesis import strategies as st

from forwarder import jsoncodec, splunk_event
from forwarder.config import parse_config
from forwarder.event import AuditEvent
from forwarder.sinks.splunk_hec import SplunkHecSink
from forwarder.splunk_event import hec_event, hec_line, hec_metadata

UTC = dt.timezone.utc
# Naive, UTC and offset datetimes; offsets are kept off the calendar's ends, where converting overflows.
utc_times = st.datetimes(timezones=st.just(UTC))
naive_times = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
offset_times = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
    timezones=st.builds(dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))),
)
any_time = st.one_of(utc_times, naive_times, offset_times)
# Text with what JSON escapes, non-ASCII and a lone surrogate (which orjson refuses and jsoncodec escapes).
odd_text = st.text(alphabet=st.sampled_from(['a', 'Z', '"', '\\', '\n', '\x00', '\x1f', 'é', '€', '😀', '\ud800', ' ']), max_size=12)
meta_value = st.one_of(st.none(), st.just(""), odd_text)
details = st.dictionaries(odd_text, st.one_of(st.integers(), st.floats(allow_nan=False), odd_text, st.none(), st.booleans()), max_size=4)


def make_event(timestamp: dt.datetime, text: str = "login", more: dict | None = None) -> AuditEvent:
    return AuditEvent(
        id="evt-1", vendor="crusoe", product="audit", timestamp=timestamp, raw={"what": text, **(more or {})},
        ingested_at=dt.datetime(2025, 3, 1, tzinfo=UTC), action=text, outcome="success", details=more or {},
    )


@settings(max_examples=400, deadline=None)
@given(timestamp=any_time, index=meta_value, host=meta_value, source=meta_value, sourcetype=odd_text, text=odd_text, more=details)
@example(timestamp=dt.datetime.fromtimestamp(1796255937, UTC), index="audit", host="fw01", source="s", sourcetype="crusoe:cloud:audit", text="x", more={})
@example(timestamp=dt.datetime(2026, 12, 3, 6, 6, 17, 123456, UTC), index=None, host=None, source=None, sourcetype="", text="", more={})
@example(timestamp=dt.datetime(1969, 12, 31, 23, 59, 59, 999900, UTC), index=None, host=None, source=None, sourcetype="x", text="", more={})
@example(timestamp=dt.datetime(1, 1, 1, tzinfo=UTC), index=None, host=None, source=None, sourcetype="x", text="", more={})
@example(timestamp=dt.datetime(9999, 12, 31, 23, 59, 59, 999999, UTC), index=None, host=None, source=None, sourcetype="x", text="", more={})
def test_line_is_byte_identical_to_the_dumped_envelope(timestamp, index, host, source, sourcetype, text, more):
    event = make_event(timestamp, text, more)
    envelope = hec_event(event, index=index, host=host, source=source, sourcetype=sourcetype)
    metadata = hec_metadata(index=index, host=host, source=source, sourcetype=envelope["sourcetype"])
    assert hec_line(event, metadata) == jsoncodec.dumps(envelope)


def test_time_keeps_whole_seconds_and_milliseconds_in_shortest_form():
    whole = make_event(dt.datetime.fromtimestamp(1796255937, UTC))
    millis = make_event(dt.datetime.fromtimestamp(1796255937, UTC) + dt.timedelta(microseconds=123456))
    metadata = hec_metadata(index=None, host=None, source=None, sourcetype="t")
    assert hec_line(whole, metadata).startswith(b'{"time":1796255937.0,"sourcetype":"t","event":{')
    assert hec_line(millis, metadata).startswith(b'{"time":1796255937.123,"sourcetype":"t","event":{')


def test_sink_computes_the_metadata_once_per_dataset(monkeypatch):
    calls = []

    def counting(**kwargs):
        calls.append(kwargs["sourcetype"])
        return hec_metadata(**kwargs)

    monkeypatch.setattr("forwarder.sinks.splunk_hec.hec_metadata", counting)
    monkeypatch.setenv("HEC_TOKEN", "t")
    table = {"name": "splunk", "type": "splunk_hec", "url": ["https://127.0.0.1:8088"], "token": "env:HEC_TOKEN",
             "index": "audit", "sourcetypes": {"crusoe": "my:crusoe"}}
    sink = SplunkHecSink(parse_config({"sink": [table]}).sinks[0])
    try:
        start = dt.datetime(2025, 3, 1, tzinfo=UTC)
        crusoe = [make_event(start + dt.timedelta(seconds=i)) for i in range(5)]
        other = AuditEvent.build(vendor="hpe_greenlake", product="audit", raw={"i": 1}, timestamp=start)
        lines = sink.encode(crusoe + [other]) + sink.encode(crusoe)
    finally:
        sink.close()
    assert calls == ["my:crusoe", "hpe:greenlake:audit"]
    assert lines[0] == jsoncodec.dumps(hec_event(crusoe[0], index="audit", host=None, source=None, sourcetype="my:crusoe"))
    assert lines[5] == jsoncodec.dumps(splunk_event.hec_event(other, index="audit", host=None, source=None))
