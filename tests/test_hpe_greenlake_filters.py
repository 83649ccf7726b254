"""GreenLake filters: rendering (quoting, every operator), query planning, and the simulator's parser."""

from __future__ import annotations

import datetime as dt

import pytest

from forwarder.errors import ConfigError
from forwarder.simulators.hpe_greenlake import Condition, FilterError, parse_filter
from forwarder.sources.hpe_greenlake import FILTER_FIELDS, Clause, plan_queries, quote_value, render_filter

UTC = dt.timezone.utc
IDS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(12)]


def rendered(queries: list[list[Clause]]) -> list[str]:
    return [" and ".join(c.render() for c in q) for q in queries]


# -- rendering -------------------------------------------------------------------
def test_quote_doubles_inner_quotes() -> None:
    assert quote_value("plain") == "'plain'"
    assert quote_value("O'Brien") == "'O''Brien'"
    assert quote_value("''") == "''''''"


@pytest.mark.parametrize(
    "clause, text",
    [
        (Clause("category", "eq", ("User Management",)), "category eq 'User Management'"),
        (Clause("createdAt", "ge", ("2024-02-16T07:54:55Z",)), "createdAt ge '2024-02-16T07:54:55Z'"),
        (Clause("createdAt", "lt", ("2024-02-16T08:00:00Z",)), "createdAt lt '2024-02-16T08:00:00Z'"),
        (Clause("description", "contains", ("Logged in",)), "contains(description, 'Logged in')"),
        (Clause("category", "in", ("Device Management", "User Activity")), "category in ('Device Management', 'User Activity')"),
        (Clause("workspace/name", "eq", ("it's",)), "workspace/name eq 'it''s'"),
        (Clause("description", "contains", ("a', 'b",)), "contains(description, 'a'', ''b')"),
    ],
)
def test_every_operator_renders(clause: Clause, text: str) -> None:
    assert clause.render() == text


def test_window_is_half_open_whole_seconds_and_first() -> None:
    start = dt.datetime(2025, 6, 1, 0, 0, 0, 999_000, tzinfo=UTC)
    text = render_filter(start, start + dt.timedelta(hours=1), [Clause("region", "eq", ("us-west",))])
    assert text == "createdAt ge '2025-06-01T00:00:00Z' and createdAt lt '2025-06-01T01:00:00Z' and region eq 'us-west'"


# -- planning -----------------------------------------------------------------------
def test_no_filters_is_one_query_without_clauses() -> None:
    assert plan_queries({}, "v1", "filters") == [[]]


def test_scalar_list_and_table_forms() -> None:
    queries = plan_queries(
        {"category": ["User Management", "Device Management"], "description": {"contains": "logged"}, "region": "us-west"},
        "v1",
        "filters",
    )
    assert rendered(queries) == [
        "contains(description, 'logged') and region eq 'us-west' and category in ('User Management', 'Device Management')"
    ]


def test_service_offer_lists_over_five_are_split_into_disjoint_queries() -> None:
    queries = plan_queries({"serviceOffer/id": IDS}, "v2beta1", "filters")
    assert [q[0].values for q in queries] == [tuple(IDS[0:5]), tuple(IDS[5:10]), tuple(IDS[10:12])]
    assert all(q[0].op == "in" for q in queries)


def test_list_on_eq_only_field_becomes_one_query_per_value_and_lists_multiply() -> None:
    queries = plan_queries({"region": ["us-west", "eu-central"], "application/id": ["a", "b", "c"]}, "v1", "filters")
    assert len(queries) == 6
    assert rendered(queries)[0] == "region eq 'us-west' and application/id eq 'a'"
    assert rendered(queries)[-1] == "region eq 'eu-central' and application/id eq 'c'"


def test_repeated_values_are_dropped_so_nothing_is_read_twice() -> None:
    queries = plan_queries({"region": ["us-west", "us-west"]}, "v2beta1", "filters")
    assert rendered(queries) == ["region eq 'us-west'"]


def test_booleans_render_quoted() -> None:
    assert rendered(plan_queries({"hasDetails": True}, "v1", "f")) == ["hasDetails eq 'true'"]
    assert rendered(plan_queries({"hasDetails": "false"}, "v2beta1", "f")) == ["hasDetails eq 'false'"]


@pytest.mark.parametrize(
    "filters, version, key, words",
    [
        ({"username": "a@b.c"}, "v1", "filters.username", "unknown filter field for api_version v1"),
        ({"user/username": "a@b.c"}, "v2beta1", "filters.user/username", "unknown filter field"),
        ({"region": {"contains": "us"}}, "v2beta1", "filters.region.contains", "not supported on region"),
        ({"region": {"in": ["us-west", "eu"]}}, "v1", "filters.region.in", "operator in is not supported on region"),
        ({"category": {"contains": "x"}}, "v1", "filters.category.contains", "not supported on category"),
        ({"region": {"ne": "us"}}, "v1", "filters.region.ne", "unknown operator"),
        ({"createdAt": {"ge": "2025-01-01T00:00:00Z"}}, "v1", "filters.createdAt", "set from the time window"),
        ({"workspace/type": "PERSONAL"}, "v2beta1", "filters.workspace/type", "not one of STANDALONE, TENANT, MSP"),
        ({"hasDetails": "yes"}, "v1", "filters.hasDetails", "not one of true, false"),
        ({"description": {"contains": ["a", "b"]}}, "v1", "filters.description.contains", "takes one value"),
        ({"category": []}, "v1", "filters.category", "empty list"),
        ({"region": 5}, "v1", "filters.region", "non-empty strings"),
        ({"region": ""}, "v1", "filters.region", "non-empty strings"),
        ({"region": {}}, "v1", "filters.region", "needs an operator"),
        ({"region": [f"r{i}" for i in range(6)], "category": {"eq": "x"}, "hasDetails": ["true", "false"], "application/id": ["a", "b", "c"]}, "v1", "filters", "expand to 36 queries"),
    ],
)
def test_bad_filters_name_the_key(filters: dict, version: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan_queries(filters, version, "filters")
    assert info.value.key == key
    assert words in info.value.problem


# -- the simulator's parser ------------------------------------------------------------
TRICKY = ["O'Brien", "a and b", "x') or ('1'='1", "(paren)", "comma, here", "''", "ünïcödé", "  spaced  "]


@pytest.mark.parametrize("value", TRICKY)
def test_rendered_values_parse_back_exactly(value: str) -> None:
    for version in ("v1", "v2beta1"):
        clauses = [Clause("description", "eq", (value,)), Clause("description", "contains", (value,)), Clause("category", "in", (value, "other"))]
        text = render_filter(dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 1, 2, tzinfo=UTC), clauses)
        parsed = parse_filter(text, version)
        assert parsed[2:] == [Condition(c.field, c.op, c.values) for c in clauses]


@pytest.mark.parametrize("version", ["v1", "v2beta1"])
def test_parser_accepts_every_documented_field_and_operator(version: str) -> None:
    for name, spec in FILTER_FIELDS[version].items():
        for op in spec.ops:
            value = "2025-01-01T00:00:00.0Z" if name == "createdAt" else (spec.values or ("x",))[0]
            clause = Clause(name, op, (value, value) if op == "in" else (value,))
            assert parse_filter(clause.render(), version) == [Condition(name, op, clause.values)]


@pytest.mark.parametrize(
    "text, words",
    [
        ("category eq 'a' or category eq 'b'", "joined with 'and'"),
        ("category eq 'a' AND region eq 'b'", "joined with 'and'"),
        ("not category eq 'a'", "unsupported operator"),
        ("(category eq 'a')", "expected word"),
        ("category eq a", "expected string"),
        ("category eq 'a", "unterminated string"),
        ("category ne 'a'", "unsupported operator 'ne'"),
        ("category gt 'a'", "unsupported operator 'gt'"),
        ("username eq 'a'", "unsupported filter property 'username'"),
        ("region in ('a', 'b')", "operator 'in' is not supported for 'region'"),
        ("contains(region, 'us')", "operator 'contains' is not supported"),
        ("createdAt eq '2025-01-01T00:00:00Z'", "operator 'eq' is not supported for 'createdAt'"),
        ("createdAt ge '2025-01-01'", "not an RFC 3339 timestamp"),
        ("createdAt ge 'yesterday'", "not an RFC 3339 timestamp"),
        ("hasDetails eq 'yes'", "invalid value"),
        ("hasDetails eq true", "expected string"),
        ("category in ()", "expected string"),
        ("category eq 'a' and", "unexpected end"),
        ("", "empty filter"),
    ],
)
def test_parser_rejects_what_hpe_rejects(text: str, words: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(text, "v1")
    assert words in str(info.value)


def test_parser_v2_limits_service_offer_ids_to_five() -> None:
    five = "serviceOffer/id in (" + ", ".join(quote_value(i) for i in IDS[:5]) + ")"
    assert parse_filter(five, "v2beta1")[0].values == tuple(IDS[:5])
    with pytest.raises(FilterError, match="at most 5"):
        parse_filter("serviceOffer/id in (" + ", ".join(quote_value(i) for i in IDS[:6]) + ")", "v2beta1")
    with pytest.raises(FilterError, match="invalid value 'PERSONAL'"):
        parse_filter("workspace/type eq 'PERSONAL'", "v2beta1")
