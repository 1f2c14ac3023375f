"""Tracking plans: plan files, the built-in plan, and the violations a Validator finds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli import catalogue, plans
from cmdai_cli.errors import ConfigError
from cmdai_cli.plans.builtin import plain
from cmdai_cli.plans.check import pointer

DRAFT = "http://json-schema.org/draft-07/schema#"


def track_rule(name: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "TRACK",
        "key": name,
        "version": 1,
        "jsonSchema": {
            "$schema": DRAFT,
            "type": "object",
            "properties": {"properties": {"type": "object", **properties}},
            "required": ["properties"],
            **extra,
        },
    }


ORDER = track_rule(
    "Order Completed",
    {
        "properties": {
            "order_id": {"type": "string"},
            "total": {"type": "number"},
            "currency": {"type": "string", "enum": ["EUR", "USD"]},
            "cart": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"sku": {"type": "string"}, "price": {"type": "number"}},
                            "required": ["sku", "price"],
                            "additionalProperties": False,
                        },
                    }
                },
                "required": ["items"],
            },
        },
        "required": ["order_id", "total"],
        "additionalProperties": False,
    },
)
IDENTIFY = {
    "type": "IDENTIFY",
    "key": None,
    "version": 2,
    "jsonSchema": {
        "type": "object",
        "properties": {
            "traits": {
                "type": "object",
                "properties": {"email": {"type": "string"}},
                "required": ["email"],
            }
        },
    },
}


def validator(*rules: dict[str, Any]) -> plans.Validator:
    return plans.Validator(plans.parse_plan({"name": "test", "rules": list(rules)}, source="t"))


def order(**properties: Any) -> dict[str, Any]:
    base = {"order_id": "o-1", "total": 12.5, "cart": {"items": [{"sku": "a", "price": 1}]}}
    return {"type": "track", "event": "Order Completed", "properties": {**base, **properties}}


def kinds(found: list[plans.Violation]) -> list[tuple[str, str]]:
    return [(v.kind, v.pointer) for v in found]


# ---------------------------------------------------------------- the violation kinds


def test_an_event_that_keeps_the_plan_has_no_violation() -> None:
    assert validator(ORDER, IDENTIFY).check(order()) == []
    assert validator(IDENTIFY).check({"type": "identify", "traits": {"email": "a@b.c"}}) == []


def test_unplanned_event() -> None:
    found = validator(ORDER).check({"type": "track", "event": "Cart Viewed", "properties": {}})
    assert kinds(found) == [("unplanned_event", "/event")]
    assert "Cart Viewed" in found[0].message
    assert found[0].rule is None


def test_a_track_without_a_name_or_a_message_without_a_type_is_unplanned() -> None:
    check = validator(ORDER).check
    assert kinds(check({"type": "track", "properties": {}})) == [("unplanned_event", "/event")]
    assert kinds(check({"event": "Order Completed"})) == [("unplanned_event", "/type")]


def test_required_property_missing() -> None:
    event = order()
    del event["properties"]["total"]
    del event["properties"]["order_id"]
    found = validator(ORDER).check(event)
    assert sorted(kinds(found)) == [
        ("required_missing", "/properties/order_id"),
        ("required_missing", "/properties/total"),
    ]
    assert found[0].rule == "TRACK Order Completed"


def test_datatype_mismatch() -> None:
    found = validator(ORDER).check(order(total="12.50"))
    assert kinds(found) == [("datatype_mismatch", "/properties/total")]
    assert found[0].message == "expected number, got string"


def test_additional_properties() -> None:
    found = validator(ORDER).check(order(coupon="X", note=None))
    assert sorted(kinds(found)) == [
        ("additional_properties", "/properties/coupon"),
        ("additional_properties", "/properties/note"),
    ]


def test_a_value_outside_an_enum_is_not_allowed() -> None:
    found = validator(ORDER).check(order(currency="GBP"))
    assert kinds(found) == [("invalid_value", "/properties/currency")]


def test_every_violation_of_one_event_is_reported() -> None:
    found = validator(ORDER).check(order(total=True, extra=1, order_id=None))
    assert sorted(kinds(found)) == [
        ("additional_properties", "/properties/extra"),
        ("datatype_mismatch", "/properties/order_id"),
        ("datatype_mismatch", "/properties/total"),
    ]


def test_nested_properties_have_their_full_pointer() -> None:
    items = [{"sku": "a", "price": 1}, {"sku": 7, "price": 2, "size": "L"}, {"price": 3}]
    found = validator(ORDER).check(order(cart={"items": items}))
    assert sorted(kinds(found)) == [
        ("additional_properties", "/properties/cart/items/1/size"),
        ("datatype_mismatch", "/properties/cart/items/1/sku"),
        ("required_missing", "/properties/cart/items/2/sku"),
    ]
    assert kinds(validator(ORDER).check(order(cart={}))) == [
        ("required_missing", "/properties/cart/items")
    ]


def test_a_pointer_escapes_slash_and_tilde() -> None:
    assert pointer(["properties", "a/b", "c~d", 0]) == "/properties/a~1b/c~0d/0"
    rule = track_rule("E", {"additionalProperties": False})
    found = validator(rule).check({"type": "track", "event": "E", "properties": {"a/b": 1}})
    assert kinds(found) == [("additional_properties", "/properties/a~1b")]


def test_identify_is_checked_against_the_identify_rule() -> None:
    found = validator(IDENTIFY).check({"type": "identify", "traits": {"name": "x"}})
    assert kinds(found) == [("required_missing", "/traits/email")]
    assert found[0].rule == "IDENTIFY"


def test_types_without_a_rule_are_not_checked_but_common_rules_apply_to_all() -> None:
    common = {
        "type": "COMMON",
        "key": None,
        "jsonSchema": {
            "type": "object",
            "properties": {
                "context": {"type": "object", "properties": {"locale": {"type": "string"}}}
            },
        },
    }
    check = validator(ORDER, common).check
    assert check({"type": "page", "name": "Home"}) == []
    assert kinds(check({"type": "page", "context": {"locale": 5}})) == [
        ("datatype_mismatch", "/context/locale")
    ]
    assert kinds(check({**order(), "context": {"locale": ["en"]}})) == [
        ("datatype_mismatch", "/context/locale")
    ]


def test_page_rules_match_by_name_first() -> None:
    def page(key: str | None, required: str) -> dict[str, Any]:
        schema = {"type": "object", "required": [required]}
        return {"type": "PAGE", "key": key, "jsonSchema": {"properties": {"properties": schema}}}

    check = validator(page("Pricing", "plan"), page(None, "path")).check
    pricing = {"type": "page", "name": "Pricing", "properties": {}}
    assert kinds(check(pricing)) == [("required_missing", "/properties/plan")]
    other = {"type": "page", "name": "Home", "properties": {}}
    assert kinds(check(other)) == [("required_missing", "/properties/path")]


def test_checking_never_changes_the_event() -> None:
    rule = track_rule("E", {"properties": {"n": {"type": "integer", "default": 3}}})
    event = {"type": "track", "event": "E", "properties": {}}
    validator(rule).check(event)
    assert event == {"type": "track", "event": "E", "properties": {}}


def test_an_anyof_of_types_is_a_datatype_mismatch() -> None:
    rule = track_rule(
        "E", {"properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}
    )
    found = validator(rule).check({"type": "track", "event": "E", "properties": {"n": "1"}})
    assert kinds(found) == [("datatype_mismatch", "/properties/n")]
    assert found[0].message == "expected integer or null, got string"


# ---------------------------------------------------------------- the built-in plan


def test_the_builtin_plan_has_a_rule_per_catalogue_event() -> None:
    plan = plans.builtin_plan()
    track = {r.key for r in plan.rules if r.type == "TRACK"}
    named = {s.name for s in catalogue.events() if s.segment_type == "track"}
    assert track == named | {catalogue.TEST_EVENT}
    assert [r.key for r in plan.rules if r.type == "IDENTIFY"] == [None]
    # Plain schemas: no titles, and type-only anyOf lists are type lists.
    text = json.dumps([r.schema for r in plan.rules])
    assert '"title"' not in text
    opened = next(r for r in plan.rules if r.key == "Opened").schema
    props = opened["properties"]["properties"]
    assert props["required"] == ["type"]
    assert props["properties"]["trigger"] == {"type": ["string", "null"]}


def test_every_catalogue_sample_keeps_the_builtin_plan() -> None:
    check = plans.Validator(plans.builtin_plan()).check
    for spec in catalogue.events():
        assert check(catalogue.build_message(spec, user_id="u1")) == [], spec.name


def test_the_test_event_keeps_the_builtin_plan(cli, tmp_path) -> None:
    """What `send-test` sends by default is not flagged by the plan cmdai ships."""
    check = plans.Validator(plans.builtin_plan()).check
    assert check(catalogue.test_message(user_id="u1")) == []
    assert check(catalogue.test_message(anonymous_id="a1")) == []
    shown = cli("plan", "show", "--builtin", "--json")
    assert catalogue.TEST_EVENT in shown.stdout


def test_the_builtin_plan_finds_what_the_catalogue_models_refuse() -> None:
    check = plans.Validator(plans.builtin_plan()).check
    closed = catalogue.build_message(catalogue.spec_for("Closed"), user_id="u")
    closed["properties"]["inputText"] = 3
    assert kinds(check(closed)) == [("datatype_mismatch", "/properties/inputText")]
    booted = catalogue.build_message(catalogue.spec_for("CommandBar booted"), user_id="u")
    booted["traits"]["userAttributes"] = "admin"
    assert kinds(check(booted)) == [("datatype_mismatch", "/traits/userAttributes")]
    unknown = {"type": "track", "event": "Spotlight Opened", "properties": {"type": "x"}}
    assert kinds(check(unknown)) == [("unplanned_event", "/event")]


def test_plain_keeps_an_anyof_that_is_more_than_types() -> None:
    mixed = {"anyOf": [{"type": "string", "minLength": 2}, {"type": "null"}], "title": "X"}
    assert plain(mixed) == {"anyOf": [{"type": "string", "minLength": 2}, {"type": "null"}]}
    assert plain({"anyOf": [{"enum": ["a"], "type": "string"}, {"type": "null"}]}) == {
        "anyOf": [{"enum": ["a"], "type": "string"}, {"type": "null"}]
    }


# ---------------------------------------------------------------- plan files


def test_a_plan_file_round_trips(tmp_path: Path) -> None:
    plan = plans.parse_plan({"name": "Shop", "rules": [ORDER, IDENTIFY]}, source="x")
    path = tmp_path / "plan.json"
    plans.save_plan(plan, path)
    again = plans.load_plan(path)
    assert again.name == "Shop"
    assert [r.as_api() for r in again.rules] == [r.as_api() for r in plan.rules]
    assert again.origin == str(path)


@pytest.mark.parametrize(
    "data",
    [[ORDER], {"data": {"rules": [ORDER]}}, {"rules": [ORDER], "name": "n"}],
    ids=["list", "api-answer", "plan-file"],
)
def test_the_plan_file_shapes_read(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    assert [r.key for r in plans.load_plan(path).rules] == ["Order Completed"]


BAD_PLANS = [
    ("{", ["not valid JSON"]),
    ('"x"', ["JSON object with 'rules'"]),
    ('{"rules": 3}', ["needs 'rules'"]),
    ('{"rules": [3]}', ["rule 1", "JSON object"]),
    ('{"rules": [{"type": "ALIAS", "key": null}]}', ["rule 1", "'type' must be one of"]),
    ('{"rules": [{"type": "TRACK", "key": null}]}', ["rule 1", "needs 'key'"]),
    ('{"rules": [{"type": "TRACK", "key": "A", "version": "2"}]}', ["rule 1 (TRACK 'A')"]),
    (
        '{"rules": [{"type": "TRACK", "key": "A"}, {"type": "TRACK", "key": "A"}]}',
        ["rule 2 (TRACK 'A')", "same event as rule 1"],
    ),
    ('{"rules": [{"type": "TRACK", "key": "A", "jsonSchema": []}]}', ["'jsonSchema'"]),
]


@pytest.mark.parametrize(("text", "words"), BAD_PLANS)
def test_bad_plan_files_name_the_file_and_rule(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        plans.load_plan(path)
    assert caught.value.message.startswith(f"{path}:")
    for word in words:
        assert word in caught.value.message


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "objekt"}, ["rule TRACK Bad", "not a valid JSON Schema at /type"]),
        ({"properties": {"properties": {"required": "x"}}}, ["rule TRACK Bad", "/properties"]),
        ({"$ref": "https://example.com/s.json"}, ["rule TRACK Bad", "no remote $ref"]),
    ],
    ids=["unknown-type", "bad-required", "remote-ref"],
)
def test_a_rule_with_a_broken_schema_is_named(
    tmp_path: Path, schema: dict[str, Any], words: list[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"rules": [{"type": "TRACK", "key": "Bad", "jsonSchema": schema}]}))
    with pytest.raises(ConfigError) as caught:
        plans.Validator(plans.load_plan(path))
    assert caught.value.message.startswith(f"{path}: rule TRACK Bad")
    for word in words:
        assert word in caught.value.message


def test_unreadable_plan_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such plan file"):
        plans.load_plan(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="is a directory"):
        plans.load_plan(tmp_path)
    (tmp_path / "latin1.json").write_bytes(b'{"name": "\xe9"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        plans.load_plan(tmp_path / "latin1.json")


# ---------------------------------------------------------------- the stream


def test_validate_stream_counts_by_event_and_kind() -> None:
    from cmdai_cli.events.records import Event
    from cmdai_cli.plans.run import ValidateResult, validate_stream

    events = [
        order(),
        order(total="x"),
        {"type": "track", "event": "Nope"},
        order(total="y", extra=1),
    ]
    batches = [[Event(i, "t", i + 1, e, 0) for i, e in enumerate(events)]]
    seen: list[tuple[int, str, str]] = []
    summary = validate_stream(
        batches,
        validator(ORDER),
        lambda i, event, v: seen.append((i, event, v.kind)),
        ValidateResult(),
    )
    assert seen == [
        (1, "Order Completed", "datatype_mismatch"),
        (2, "Nope", "unplanned_event"),
        (3, "Order Completed", "datatype_mismatch"),
        (3, "Order Completed", "additional_properties"),
    ]
    assert summary.as_json() == {
        "events": 4,
        "events_with_violations": 3,
        "violations": 4,
        "by_event": {
            "Order Completed": {"datatype_mismatch": 2, "additional_properties": 1},
            "Nope": {"unplanned_event": 1},
        },
    }
