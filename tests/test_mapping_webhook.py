"""The webhook target: the mapping table, the body it builds, Command AI's recording rules."""

from __future__ import annotations

from typing import Any

import pytest

from cmdai_cli.errors import DataError
from cmdai_cli.mapping.webhook import (
    RECOMMENDED,
    apply_mapping,
    map_webhook,
    parse_mapping,
    record_properties,
)
from tests.mapping_samples import IDENTIFY, TRACK

# ---------------------------------------------------------------- parse_mapping


def test_absent_or_empty_mapping_is_the_whole_event() -> None:
    tables: tuple[dict[str, str] | None, ...] = (None, {})
    for table in tables:
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
