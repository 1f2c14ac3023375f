"""The mapping engine: webhook mapping, recording rules, destination emulation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdai_cli import mapping
from cmdai_cli.errors import DataError
from cmdai_cli.mapping import (
    RECOMMENDED,
    apply_mapping,
    format_path,
    make_mapper,
    map_destination,
    map_stream,
    map_webhook,
    parse_mapping,
    parse_path,
    record_properties,
)

IDENTIFY = {
    "type": "identify",
    "userId": "u1",
    "traits": {"plan": "pro", "email": "a@example.com"},
    "context": {"CommandBar": {"hmac": "h1", "formFactor": {"type": "modal"}}},
}
TRACK = {
    "type": "track",
    "userId": "u2",
    "event": "Plan Upgraded",
    "properties": {"plan": "enterprise", "seats": 10},
    "context": {"traits": {"email": "b@example.com"}},
}


# ---------------------------------------------------------------- parse_mapping


def test_absent_or_empty_mapping_is_the_whole_event() -> None:
    for table in (None, {}):
        parsed = parse_mapping(table)
        assert parsed.whole_event
        assert apply_mapping(TRACK, parsed) is TRACK
    assert RECOMMENDED.whole_event
    assert RECOMMENDED.to_segment_data() == {"@path": "$."}


def test_paths_and_literals_are_told_apart() -> None:
    parsed = parse_mapping(
        {"userId": "$.userId", "user_property.plan": "$.properties.plan", "source": "segment"}
    )
    assert [(f.name, f.is_path) for f in parsed.fields] == [
        ("userId", True),
        ("user_property.plan", True),
        ("source", False),
    ]
    assert parsed.to_segment_data() == {
        "userId": {"@path": "$.userId"},
        "user_property.plan": {"@path": "$.properties.plan"},
        "source": "segment",
    }


@pytest.mark.parametrize("value", [3, True, ["$.a"], None, 1.5])
def test_a_non_string_source_names_the_file_and_key(value: Any) -> None:
    with pytest.raises(DataError) as info:
        parse_mapping({"userId": "$.userId", "plan": value}, source="m.toml")
    assert info.value.source == "m.toml"
    assert info.value.field == "plan"
    assert "must be a string" in str(info.value)
    assert str(info.value).startswith("m.toml (plan): ")


@pytest.mark.parametrize(
    "path", ["$.a..b", "$.a.", "$.a[", "$.a[x]", '$.a["b]', "$.a b.c[0", "$.a]"]
)
def test_bad_path_syntax_is_a_data_error(path: str) -> None:
    with pytest.raises(DataError) as info:
        parse_mapping({"userId": path}, source="m.toml")
    assert info.value.field == "userId"
    assert "bad path" in str(info.value)


def test_nested_tables_are_dotted_field_names() -> None:
    parsed = parse_mapping({"userId": "$.userId", "user_property": {"plan": "$.traits.plan"}})
    assert parsed.table == {"userId": "$.userId", "user_property.plan": "$.traits.plan"}


def test_a_field_given_twice_is_refused() -> None:
    with pytest.raises(DataError, match="given twice"):
        parse_mapping({"user_property.plan": "$.a", "user_property": {"plan": "$.b"}})


def test_empty_property_name_and_non_table_are_refused() -> None:
    with pytest.raises(DataError, match="needs a property name"):
        parse_mapping({"user_property.": "$.a"})
    with pytest.raises(DataError, match="table"):
        parse_mapping(["$.a"])  # type: ignore[arg-type]


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("$.", ()),
        ("$.userId", ("userId",)),
        ("$.context.traits.email", ("context", "traits", "email")),
        ("$.items[0].sku", ("items", 0, "sku")),
        ('$.traits["first name"]', ("traits", "first name")),
        ("$.traits['a.b']", ("traits", "a.b")),
        ('$.["user_property.x"]', ("user_property.x",)),
    ],
)
def test_parse_path(path: str, keys: tuple[Any, ...]) -> None:
    assert parse_path(path) == keys


@given(st.lists(st.one_of(st.text(min_size=1), st.integers(0, 99)), max_size=5))
def test_format_path_round_trips(keys: list[Any]) -> None:
    assert parse_path(format_path(keys)) == tuple(keys)


def test_apply_mapping_leaves_out_what_a_path_does_not_find() -> None:
    parsed = parse_mapping(
        {
            "userId": "$.userId",
            "user_property.plan": "$.properties.plan",
            "user_property.missing": "$.properties.nothing.here",
            "user_property.first": "$.properties.items[0]",
            "user_property.gone": "$.properties.items[5]",
            "user_property.null": "$.properties.empty",
            "kind": "server",
        }
    )
    event = {"userId": "u", "properties": {"plan": "pro", "items": ["a"], "empty": None}}
    assert apply_mapping(event, parsed) == {
        "userId": "u",
        "user_property.plan": "pro",
        "user_property.first": "a",
        "user_property.null": None,
        "kind": "server",
    }


# ---------------------------------------------------------------- recording rules


@pytest.mark.parametrize("body", [{}, {"userId": None}, {"userId": ""}, {"traits": {"a": 1}}])
def test_a_body_without_user_id_is_ignored(body: dict[str, Any]) -> None:
    assert record_properties(body) == (
        {"userId": None, "properties": {}, "ignored": "no userId"},
        None,
    )


def test_traits_become_properties() -> None:
    record, problem = map_webhook(IDENTIFY)
    assert problem is None
    assert record == {
        "userId": "u1",
        "properties": {"plan": "pro", "email": "a@example.com"},
        "ignored": None,
    }


def test_user_property_fields_and_the_event_boolean_whatever_the_type() -> None:
    parsed = parse_mapping(
        {
            "userId": "$.userId",
            "user_property.plan": "$.properties.plan",
            "user_property_event": "$.event",
        }
    )
    record, _ = map_webhook(TRACK, parsed)
    assert record == {
        "userId": "u2",
        "properties": {"Plan Upgraded": True, "plan": "enterprise"},
        "ignored": None,
    }


def test_user_property_event_must_be_a_non_empty_string() -> None:
    for value in ("", 3, None, ["x"]):
        record, _ = record_properties({"userId": "u", "user_property_event": value})
        assert record is not None
        assert record["properties"] == {}


def test_precedence_user_property_beats_event_beats_traits() -> None:
    body = {
        "userId": "u",
        "traits": {"plan": "traits", "beta": "traits", "x": 1},
        "user_property_event": "beta",
        "user_property.plan": "named",
    }
    record, _ = record_properties(body)
    assert record is not None
    assert record["properties"] == {"plan": "named", "beta": True, "x": 1}
    # and the named field beats the event boolean too
    record, _ = record_properties(
        {"userId": "u", "user_property_event": "plan", "user_property.plan": "named"}
    )
    assert record is not None
    assert record["properties"] == {"plan": "named"}


def test_explain_says_which_rule_and_path_won() -> None:
    parsed = parse_mapping(
        {
            "userId": "$.userId",
            "traits": "$.context.traits",
            "user_property.email": "$.properties.plan",
            "user_property_event": "$.event",
            "user_property.source": "segment",
        }
    )
    record, _ = map_webhook(TRACK, parsed, explain=True)
    assert record is not None
    assert record["explain"] == {
        "email": {
            "rule": "user_property",
            "field": "user_property.email",
            "path": "$.properties.plan",
        },
        "Plan Upgraded": {
            "rule": "user_property_event",
            "field": "user_property_event",
            "path": "$.event",
        },
        "source": {"rule": "user_property", "field": "user_property.source", "path": None},
    }
    record, _ = map_webhook({"userId": "u", "traits": {"first name": "A"}}, explain=True)
    assert record is not None
    assert record["explain"]["first name"]["path"] == '$.traits["first name"]'


def test_traits_that_is_not_an_object_is_a_bad_record() -> None:
    assert map_webhook({"userId": "u", "traits": "plan=pro"}) == (None, "traits is not an object")
    assert map_webhook({"userId": "u", "traits": None})[0] is not None


def test_user_id_of_the_wrong_kind_is_ignored_with_its_reason() -> None:
    record, _ = map_webhook({"userId": {"id": 1}})
    assert record is not None
    assert record["ignored"] == "userId is not a string or number"
    record, _ = map_webhook({"userId": 42})
    assert record is not None
    assert record["userId"] == 42


# ---------------------------------------------------------------- destination


def test_identify_with_deploy_boots_with_only_present_options() -> None:
    record, _ = map_destination(IDENTIFY, deploy=True)
    assert record == {
        "action": "identifyUser",
        "call": "boot",
        "args": ["u1", IDENTIFY["traits"], {"hmac": "h1", "formFactor": {"type": "modal"}}],
        "ignored": None,
    }
    bare = {"type": "identify", "userId": "u1"}
    record, _ = map_destination(bare, deploy=True)
    assert record is not None
    assert record["args"] == ["u1", {}, {}]


def test_identify_without_deploy_adds_metadata() -> None:
    record, _ = map_destination(IDENTIFY, deploy=False)
    assert record == {
        "action": "identifyUser",
        "call": "addMetadataBatch",
        "args": [IDENTIFY["traits"], True],
        "ignored": None,
    }


def test_track_calls_track_event_with_properties_or_empty() -> None:
    record, _ = map_destination(TRACK)
    assert record == {
        "action": "trackEvent",
        "call": "trackEvent",
        "args": ["Plan Upgraded", TRACK["properties"]],
        "ignored": None,
    }
    record, _ = map_destination({"type": "track", "event": "Opened"})
    assert record is not None
    assert record["args"] == ["Opened", {}]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"type": "page", "userId": "u"}, "page events make no call"),
        ({"type": "group", "userId": "u"}, "group events make no call"),
        ({"userId": "u"}, "event has no type"),
        ({"type": "identify", "traits": {}}, "identify without userId"),
        ({"type": "identify", "userId": ""}, "identify without userId"),
        ({"type": "track", "userId": "u"}, "track without event"),
        ({"type": "track", "event": None}, "track without event"),
    ],
)
def test_events_that_make_no_call(event: dict[str, Any], reason: str) -> None:
    assert map_destination(event, deploy=True) == (
        {"action": None, "call": None, "args": [], "ignored": reason},
        None,
    )


def test_destination_bad_records() -> None:
    assert map_destination({"type": "identify", "userId": "u", "traits": [1]})[1] == (
        "traits is not an object"
    )
    assert map_destination({"type": "track", "event": "x", "properties": 3})[1] == (
        "properties is not an object"
    )
    assert map_destination([1, 2]) == (None, "event is not a JSON object")


# ---------------------------------------------------------------- streams of events


def test_map_stream_keeps_order_and_reports_problems() -> None:
    events = [IDENTIFY, {"userId": "u", "traits": 5}, TRACK, {"type": "page"}]
    batches = [[(i, "f", i + 1, e) for i, e in enumerate(events[:2])]]
    batches.append([(i + 2, "f", i + 3, e) for i, e in enumerate(events[2:])])
    written: list[tuple[int, dict[str, Any]]] = []
    problems: list[tuple[Any, ...]] = []
    tally = map_stream(
        batches,
        make_mapper("webhook"),
        lambda i, r: written.append((i, r)),
        lambda *p: problems.append(p),
    )
    assert [i for i, _ in written] == [0, 2, 3]
    assert problems == [(1, "f", 2, "traits is not an object")]
    assert (tally.recorded, tally.ignored, tally.errors, tally.events) == (
        2,
        {"no userId": 1},
        1,
        4,
    )


def test_map_stream_counts_survive_a_stop() -> None:
    tally = mapping.Tally()

    def stop(*_: Any) -> None:
        raise RuntimeError("stop")

    batches = [[(0, "f", 1, IDENTIFY), (1, "f", 2, "nope"), (2, "f", 3, IDENTIFY)]]
    with pytest.raises(RuntimeError):
        map_stream(batches, make_mapper(), lambda i, r: None, stop, tally)
    assert (tally.recorded, tally.errors) == (1, 1)


def test_make_mapper_rejects_an_unknown_target() -> None:
    with pytest.raises(ValueError):
        make_mapper("email")  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SPECIAL_KEYS = st.sampled_from(
    ["userId", "traits", "type", "event", "properties", "context", "user_property_event"]
)
EVENTS = st.dictionaries(
    st.one_of(SPECIAL_KEYS, st.text(max_size=8), st.text(max_size=6).map("user_property.".__add__)),
    JSON,
    max_size=8,
)
SOURCES = st.one_of(
    st.sampled_from(["$.", "$.userId", "$.traits", "$.event", "$.properties.plan", "$.a[0]"]),
    st.text(max_size=6),
)
MAPPINGS = st.dictionaries(
    st.one_of(SPECIAL_KEYS, st.text(min_size=1, max_size=6).map("user_property.".__add__)),
    SOURCES,
    max_size=5,
)


@settings(max_examples=300)
@given(event=EVENTS, table=MAPPINGS, deploy=st.booleans(), explain=st.booleans())
def test_the_mapping_never_raises_on_any_json_object(
    event: dict[str, Any], table: dict[str, str], deploy: bool, explain: bool
) -> None:
    parsed = parse_mapping(table)
    for target in ("webhook", "destination"):
        record, problem = make_mapper(target, parsed, deploy=deploy, explain=explain)(event)
        assert (record is None) != (problem is None)
        if record is not None:
            assert "ignored" in record


@settings(max_examples=100)
@given(events=st.lists(st.one_of(EVENTS, JSON), max_size=30), size=st.integers(1, 7))
def test_output_order_and_count_match_the_input(events: list[Any], size: int) -> None:
    items = [(i, "f", i + 1, e) for i, e in enumerate(events)]
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    seen: list[int] = []
    tally = map_stream(
        batches, make_mapper(), lambda i, r: seen.append(i), lambda i, *_: seen.append(i)
    )
    assert seen == list(range(len(events)))
    assert tally.events == len(events)


def test_paused_gc_restores_the_collector() -> None:
    import gc

    assert gc.isenabled()
    with mapping.paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
