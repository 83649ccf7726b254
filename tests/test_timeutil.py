import datetime as dt
import zoneinfo

import pytest

from forwarder.timeutil import epoch_seconds, format_time, iso, parse_duration, parse_time

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-05-06T07:08:09Z", dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09.5Z", dt.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)),
        ("2024-05-06T07:08:09.123456789Z", dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
        ("2024-05-06T07:08:09+02:00", dt.datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)),
        ("2024-05-06T07:08:09-0130", dt.datetime(2024, 5, 6, 8, 38, 9, tzinfo=UTC)),
        ("2024-05-06 07:08:09", dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        ("2024-05-06", dt.datetime(2024, 5, 6, tzinfo=UTC)),
        ("1700000000", dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ],
)
def test_parse_iso_and_epoch_strings(text, expected):
    assert parse_time(text) == expected


def test_epoch_seconds_and_milliseconds_agree():
    assert parse_time(1700000000) == parse_time(1700000000000)
    assert parse_time(1700000000.25) == parse_time(1700000000250)


def test_naive_datetime_is_utc_and_aware_is_converted():
    naive = dt.datetime(2024, 1, 1, 12)
    assert parse_time(naive).tzinfo is UTC
    plus2 = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert parse_time(plus2) == dt.datetime(2024, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-01-01T25:00:00Z", None, True, [], "12:00"])
def test_rejects_non_timestamps(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


def test_format_time_digits():
    t = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert format_time(t) == "2024-01-02T03:04:05.678Z"
    assert format_time(t, 0) == "2024-01-02T03:04:05Z"
    assert format_time(t, 6) == "2024-01-02T03:04:05.678901Z"


def test_epoch_seconds_has_millisecond_precision():
    t = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert epoch_seconds(t) == 1704164645.679


@pytest.mark.parametrize("value, seconds", [(30, 30), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("250ms", 0.25), (1.5, 1.5)])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-1", -1, True, "m", None])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_iso_formats_utc_with_z_and_memoizes_safely():
    from forwarder.timeutil import iso

    a = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    b = dt.datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert iso(a) == "2024-01-02T03:04:05.678Z"
    assert iso(a, "microseconds") == "2024-01-02T03:04:05.678901Z"
    assert iso(b) == "2024-01-02T03:04:06.000Z"
    assert iso(a) == "2024-01-02T03:04:05.678Z"


# -- any outside value: one exception type -----------------------------------------------
from hypothesis import example, given, settings, strategies as st  # noqa: E402

from forwarder.errors import TimeParseError  # noqa: E402

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_json_values = st.recursive(_json_scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3), max_leaves=8)
_timeish_text = st.from_regex(r"-?\d{1,25}(\.\d{0,12})?|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?", fullmatch=True)


@pytest.mark.parametrize("value", [
    1e300, -1e300, "99999999999999999999", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    float("nan"), float("inf"), -float("inf"), 10**400, -10**20, True, False, None, {"a": 1}, [1], b"2025-01-01",
])
def test_outside_values_raise_time_parse_error_only(value):
    with pytest.raises(TimeParseError):
        parse_time(value)


@settings(max_examples=300, deadline=None)
@given(_json_values | _timeish_text | st.datetimes())
def test_parse_time_gives_utc_or_time_parse_error(value):
    try:
        parsed = parse_time(value)
    except TimeParseError:
        return
    assert parsed.utcoffset() == dt.timedelta(0)
    assert parse_time(format_time(parsed, 6)) == parsed.replace(microsecond=parsed.microsecond)


@given(st.datetimes(timezones=st.just(dt.timezone.utc)) | st.datetimes(timezones=st.timezones()),
       st.sampled_from(["milliseconds", "microseconds", "seconds"]))
def test_iso_is_byte_identical_to_isoformat(value, timespec):
    """The per-minute fast path writes exactly what ``isoformat`` writes (``Z`` for UTC)."""
    assert iso(value, timespec) == value.isoformat(timespec=timespec).replace("+00:00", "Z")


@given(st.lists(st.sampled_from(range(4)), max_size=30), st.datetimes(timezones=st.just(dt.timezone.utc)))
def test_iso_remembers_recent_times_without_mixing_them_up(order, base):
    """An event's own time alternates with its page's shared ingested_at: each call still gets its own text."""
    values = [base.replace(microsecond=i * 1000) for i in range(4)]
    for i in order:
        for timespec in ("milliseconds", "microseconds"):
            assert iso(values[i], timespec) == values[i].isoformat(timespec=timespec).replace("+00:00", "Z")


@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.none() | st.just(dt.timezone.utc) | st.timezones()))
@example(dt.datetime(1987, 9, 27, 2, 0, tzinfo=zoneinfo.ZoneInfo("Arctic/Longyearbyen")))  # a wall time DST repeats
def test_parse_time_returns_an_aware_utc_time_as_it_is_and_converts_the_others(value):
    parsed = parse_time(value)
    assert parsed.tzinfo is dt.timezone.utc
    if value.tzinfo is dt.timezone.utc:
        assert parsed is value
    elif value.tzinfo is None:
        assert parsed == value.replace(tzinfo=dt.timezone.utc)
    else:  # by UTC offset: == across zones is False for a wall time a DST change repeats (PEP 495)
        assert parsed.replace(tzinfo=None) == value.replace(tzinfo=None) - value.utcoffset()
