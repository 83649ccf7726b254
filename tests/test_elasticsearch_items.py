"""Reading bulk responses: the all-created fast path, and what must never take it.

The sink asks for ``FILTER_PATH`` (every item keeps its ``status``, so items stay one
per document, in order) and answers an all-created response without reading items
one by one in Python. ``errors: false`` alone is not that answer: a document
diverted to the failure store is a 201 as well.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from forwarder.errors import SinkError
from forwarder.sinks.elasticsearch import FILTER_PATH, ElasticsearchSink
from tests.servers.elasticsearch import ElasticsearchServer
from tests.test_elasticsearch import events, local_sink

CREATED = {"create": {"status": 201}}
DIVERTED = {"create": {"status": 201, "failure_store": "used"}}
CONFLICT = {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}}


class Unwalkable(list):
    """Items that fail the test if Python code walks them one by one."""

    def __iter__(self):
        raise AssertionError("the items were read one by one")


@pytest.fixture
def server():
    es = ElasticsearchServer(version="8.17.0").start()
    yield es
    es.stop()


@pytest.fixture
def sink(server) -> ElasticsearchSink:
    s = local_sink(server)
    yield s
    s.close()


def sort(sink: ElasticsearchSink, body: Any, n: int) -> tuple[list[Any], list[Any], list[Any]]:
    """``_sort_items`` on ``n`` fresh events: (events, retried events, rejected events)."""
    evs = events(n)
    rejected: list[Any] = []
    retry, _ = sink._sort_items([(e, b"") for e in evs], body, rejected)
    return evs, [e for e, _ in retry], [r.event for r in rejected]


def test_an_all_created_answer_is_read_without_walking_the_items(sink):
    assert sort(sink, {"errors": False, "items": Unwalkable([CREATED] * 500)}, 500)[1:] == ([], [])


def test_a_failure_store_diversion_is_rejected_although_errors_is_false(sink):
    items = [CREATED] * 300 + [DIVERTED] + [CREATED] * 199
    evs, retry, rejected = sort(sink, {"errors": False, "items": items}, 500)
    assert retry == [] and rejected == [evs[300]]


@pytest.mark.parametrize("errors", [False, True, None])
def test_anything_but_exactly_created_is_read_item_by_item(sink, errors):
    items = [CREATED] * 10
    items[3], items[7] = CONFLICT, DIVERTED
    items[5] = {"create": {"status": 503, "error": {"type": "unavailable_shards_exception"}}}
    evs, retry, rejected = sort(sink, {"errors": errors, "items": items}, 10)
    assert retry == [evs[5]] and rejected == [evs[7]]


def test_an_item_count_that_does_not_match_still_fails(sink):
    with pytest.raises(SinkError, match="499 items for 500 documents"):
        sort(sink, {"errors": False, "items": [CREATED] * 499}, 500)


def test_a_mixed_batch_through_the_server_rejects_only_the_diverted_document(server, sink):
    server.failure_store = True
    assert sink.send(events(1, details={"x": {"y": 1}})) == []
    batch = events(6, start=1, details={"x": {"y": 2}})
    batch[2] = events(1, start=3, details={"x": "flat"})[0]
    rejected = sink.send(batch)
    assert [r.event for r in rejected] == [batch[2]] and len(server.failed) == 1
    assert sink.send(batch[:2] + batch[3:]) == []  # replays: 409s, counted as delivered


def test_the_server_filters_the_way_the_sink_relies_on(server, sink):
    """One item per document, in order, under FILTER_PATH; without ``status`` successful items vanish,
    as in Elasticsearch (empty objects are dropped from filtered arrays) — why FILTER_PATH keeps it."""
    server.failure_store = True
    sink.send(events(1, details={"x": {"y": 1}}))
    lines = sink.encode(events(3, start=1, details={"x": {"y": 2}}) + events(1, start=4, details={"x": "flat"}) + events(1, start=1))
    body = b"".join(lines)
    nd = {"Content-Type": "application/x-ndjson"}
    kept = requests.post(f"{server.url}/_bulk?filter_path={FILTER_PATH}", data=body, headers=nd).json()
    assert kept["errors"] is True
    assert [next(iter(i.values()))["status"] for i in kept["items"]] == [201, 201, 201, 201, 409]
    assert kept["items"][3] == DIVERTED
    again = requests.post(f"{server.url}/_bulk?filter_path=items.*.error", data=body, headers=nd).json()
    assert len(again["items"]) == 4  # 409, 409, 409, 409: the diverted document's item is gone, positions shift
    fresh = b"".join(sink.encode(events(2, start=10, details={"x": {"y": 3}})))
    assert requests.post(f"{server.url}/_bulk?filter_path=items.*.error", data=fresh, headers=nd).json() == {}
