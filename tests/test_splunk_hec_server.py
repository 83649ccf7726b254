"""The HEC test server itself answers as Splunk documents (raw requests, no sink).

If the server were lax, the sink tests would prove little; these pin its
strictness to the facts in shared/targets/splunk-hec.md.
"""

from __future__ import annotations

import base64
import gzip
import zlib

import pytest
import requests

from forwarder import jsoncodec
from tests.servers.hec import HecServer, HecToken

TOKEN = "6e1f0b6a-3c52-4d0e-9a77-2b8f5d1c0e4a"
ACK = "7d2e1c0b-4a63-4e1f-8b88-3c9e6f2d1f5b"
OFF = "8c3f2d1c-5b74-4f20-9c99-4d0f7e3e2a6c"
CHANNEL = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


@pytest.fixture(scope="module")
def hec():
    with HecServer(
        [
            HecToken(TOKEN, name="t", indexes=("audit",)),
            HecToken(ACK, name="a", ack=True),
            HecToken(OFF, enabled=False),
        ],
        max_content_length=10_000,
        max_pending_acks=3,
    ) as srv:
        yield srv


def post(hec, body=b"", path="/services/collector/event", token=TOKEN, scheme="Splunk", channel=None, headers=None, params=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"{scheme} {token}"
    if channel is not None:
        h["X-Splunk-Request-Channel"] = channel
    return requests.post(hec.url + path, data=body, headers=h, params=params, timeout=5)


def answer(resp):
    return resp.status_code, resp.json()


def test_auth_order_and_codes(hec):
    assert answer(post(hec, token=None)) == (401, {"text": "Token is required", "code": 2})
    assert answer(post(hec, scheme="Bearer")) == (401, {"text": "Invalid authorization", "code": 3})
    assert answer(post(hec, token="nope")) == (403, {"text": "Invalid token", "code": 4})
    assert answer(post(hec, token=OFF)) == (403, {"text": "Token disabled", "code": 1})
    assert answer(post(hec, token=None, params={"token": TOKEN})) == (400, {"text": "Query string authorization is not enabled", "code": 16})
    assert answer(post(hec, token=None, params={"token": "nope"}))[1]["code"] == 4  # token checked first
    basic = base64.b64encode(f"x:{TOKEN}".encode()).decode()
    assert answer(post(hec, token=basic, scheme="Basic", body=b'{"event":"hi","index":"audit"}')) == (200, {"text": "Success", "code": 0})


def test_channel_rules(hec):
    assert answer(post(hec, token=ACK, body=b'{"event":1}'))[1]["code"] == 10
    assert answer(post(hec, channel="not-a-guid", body=b'{"event":1}'))[1]["code"] == 11
    assert answer(post(hec, token=ACK, body=b'{"event":1}', params={"channel": CHANNEL}))[1] == {"text": "Success", "code": 0, "ackId": 0}


def test_health_ignores_tokens_and_paths_answer_like_splunk(hec):
    for headers in ({}, {"Authorization": "Splunk bogus"}):
        r = requests.get(hec.url + "/services/collector/health", headers=headers, timeout=5)
        assert answer(r) == (200, {"text": "HEC is healthy", "code": 17})
    assert answer(requests.get(hec.url + "/services/collector/event", timeout=5))[0] == 405
    assert answer(requests.get(hec.url + "/nope", timeout=5)) == (404, {"text": "The requested URL was not found on this server.", "code": 404})


def test_partial_batches_stop_at_the_first_bad_object(hec):
    hec.indexed.clear()
    good = b'{"event":"a","index":"audit"}'
    cases = [
        (b'{"event":null}', 6), (b'{"event":false}', 6), (b'{"host":"h"}', 12), (b'{"event":""}', 13),
        (b'{"event":" "}', 13), (b'{"event":1,"fields":{"x":{"y":1}}}', 15), (b"[1,2]", 6), (b'{"event":"x","time":"soon"}', 6),
    ]
    for bad, code in cases:
        r = post(hec, good + b"\n" + bad + b"\n" + good)
        assert answer(r) == (400, {"text": r.json()["text"], "code": code, "invalid-event-number": 1})
    assert len(hec.indexed) == len(cases)  # only the object before each bad one


def test_index_not_allowed_reports_one_past_the_culprit(hec):
    hec.indexed.clear()
    r = post(hec, b'{"event":"a","index":"audit"}{"event":"b","index":"secret"}{"event":"c","index":"audit"}')
    assert answer(r) == (400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 2})
    assert [e.event for e in hec.indexed] == ["a"]


def test_unknown_keys_and_fields_only_objects_are_dropped_silently(hec):
    hec.indexed.clear()
    assert answer(post(hec, b'{"event":"a"}{"event":"b","extra":1}{"event":"c"}'))[0] == 200
    assert [e.event for e in hec.indexed] == ["a"]
    assert answer(post(hec, b'{"event":"b","extra":1}'))[1]["code"] == 5
    assert answer(post(hec, b'{"fields":{"k":"v"}}{"event":"d"}'))[0] == 200
    assert [e.event for e in hec.indexed] == ["a", "d"]
    assert answer(post(hec, b"  \n "))[1] == {"text": "No data", "code": 5}


def test_metadata_defaults_and_time_magnitudes(hec):
    hec.indexed.clear()
    post(hec, b'{"event":1,"time":1714557600123}{"event":2,"time":"1714557600.5"}{"event":3,"time":1714557600123456789}')
    assert [e.time for e in hec.indexed] == [1714557600.123, 1714557600.5, pytest.approx(1714557600.123456789)]
    assert (hec.indexed[0].index, hec.indexed[0].source, hec.indexed[0].sourcetype) == ("main", "http:t", "httpevent")


def test_encodings_and_size_limit(hec):
    hec.indexed.clear()
    assert post(hec, gzip.compress(b'{"event":"z"}'), headers={"Content-Encoding": "gzip"}).status_code == 200
    assert [e.event for e in hec.indexed] == ["z"]
    r = post(hec, zlib.compress(b'{"event":"z"}'), headers={"Content-Encoding": "deflate"})
    assert r.status_code == 415 and r.headers["Content-Type"] == "text/html"
    r = post(hec, b'{"event":"' + b"x" * 10_000 + b'"}')
    assert r.status_code == 413 and r.headers["Content-Type"] == "text/html"


def test_ack_ids_per_channel_read_true_once(hec):
    other = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    ids = [post(hec, b'{"event":1}', token=ACK, channel=other).json()["ackId"] for _ in range(2)]
    assert ids == [0, 1]

    def poll(acks, channel=other):
        return post(hec, jsoncodec.dumps({"acks": acks}), path="/services/collector/ack", token=ACK, channel=channel)

    assert poll([0, 1, 7]).json() == {"acks": {"0": True, "1": True, "7": False}}
    assert poll([0, 1]).json() == {"acks": {"0": False, "1": False}}  # true only once
    post(hec, b'{"event":1}', token=ACK, channel=other)
    assert poll([2], channel=CHANNEL).json() == {"acks": {"2": False}}  # another channel's id
    assert answer(post(hec, b'{"acks":[0]}', path="/services/collector/ack", channel=CHANNEL))[1]["code"] == 14


def test_pending_acks_are_capped(hec):
    channel = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"
    codes = [post(hec, b'{"event":1}', token=ACK, channel=channel).json()["code"] for _ in range(4)]
    assert codes == [0, 0, 0, 27]


def test_ack_delay_counts_polls_before_true(hec):
    channel = "2c3d4e5f-6071-4829-93a4-b5c6d7e8f9a0"
    hec.ack_delay = 2
    try:
        ack_id = post(hec, b'{"event":1}', token=ACK, channel=channel).json()["ackId"]
    finally:
        hec.ack_delay = 0
    answers = [post(hec, jsoncodec.dumps({"acks": [ack_id]}), path="/services/collector/ack", token=ACK, channel=channel).json()["acks"][str(ack_id)]
               for _ in range(4)]
    assert answers == [False, False, True, False]  # late, then true once
