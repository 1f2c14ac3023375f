"""The Command AI event catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from cmdai_cli import catalogue
from cmdai_cli.segment.messages import check_message

SEGMENT_CATALOG = {
    "Opened": "opened",
    "Closed": "closed",
    "Abandoned Search": "abandoned_search",
    "Command Suggestion": "command_suggestion",
    "Command Execution": "command_execution",
    "No Results For Query": "no_results_for_query",
    "Nudge Shown": "nudge_shown",
    "Nudge Clicked": "nudge_clicked",
    "User Changed Shortcut": "shortcut_edited",
}
COMMON = {"end_user", "organization", "search", "session", "type", "user_type"}


def validate_message(message: Mapping[str, Any]) -> BaseModel:
    """A message from the Command AI source, checked against its event's model."""
    if message.get("type") == "identify":
        return catalogue.BootedTraits.model_validate(message.get("traits") or {})
    properties = message.get("properties") or {}
    name = str(properties.get("type") or "")
    spec = catalogue.lookup(name) or catalogue.spec_for(str(message.get("event", "")))
    return spec.validate(properties)


def test_the_segment_catalog_events_are_all_there() -> None:
    listed = {s.name: s.event_type for s in catalogue.events() if s.segment_type == "track"}
    assert SEGMENT_CATALOG.items() <= listed.items()
    booted = catalogue.lookup("CommandBar booted")
    assert booted is not None and booted.segment_type == "identify"
    in_catalog = {s.name for s in catalogue.events() if s.in_segment_catalog}
    assert in_catalog == {*SEGMENT_CATALOG, "CommandBar booted"}


@pytest.mark.parametrize("spec", catalogue.events(), ids=lambda s: s.event_type)
def test_every_sample_is_a_valid_segment_message_of_its_model(spec: catalogue.EventSpec) -> None:
    message = catalogue.build_message(spec, user_id="user-1")
    assert check_message(message) is None
    model = validate_message(message)
    assert isinstance(model, spec.model)
    if spec.segment_type == "track":
        assert message["event"] == spec.name
        assert message["properties"]["type"] == spec.event_type
        assert set(message["properties"]) >= COMMON
    else:
        assert message["type"] == "identify"
        assert {"formFactor", "userAttributes"} <= set(message["traits"])


def test_event_specific_properties() -> None:
    def props(name: str) -> set[str]:
        spec = catalogue.lookup(name)
        assert spec is not None
        return set(spec.sample)

    assert "trigger" in props("opened")
    assert "inputText" in props("closed")
    assert {"command", "commandText", "category", "source", "shortcut", "ranking"} <= props(
        "command_execution"
    )
    assert {"id", "slug", "frequency_limit", "on_select", "trigger"} <= props("nudge_clicked")
    assert {"command", "commandText", "oldShortcut", "newShortcut"} <= props("shortcut_edited")


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("opened", "Opened"),
        ("OPENED", "Opened"),
        ("nudge shown", "Nudge Shown"),
        ("Nudge-Shown", "Nudge Shown"),
        ("shortcut_edited", "User Changed Shortcut"),
        ("user changed shortcut", "User Changed Shortcut"),
        ("No_Results_For_Query", "No Results For Query"),
        ("booted", "CommandBar booted"),
        ("questlist_item_engagement", "Questlist Item Engagement"),
    ],
)
def test_lookup_by_name_or_type_ignores_case(query: str, name: str) -> None:
    spec = catalogue.lookup(query)
    assert spec is not None and spec.name == name


def test_unknown_events_are_accepted() -> None:
    assert catalogue.lookup("Checklist Magic") is None
    spec = catalogue.spec_for("Checklist Magic")
    assert (spec.name, spec.event_type, spec.segment_type) == (
        "Checklist Magic",
        "checklist_magic",
        "track",
    )
    message = catalogue.build_message(spec, anonymous_id="a-1")
    assert check_message(message) is None
    incoming = {
        "type": "track",
        "event": "Brand New Thing",
        "properties": {"type": "brand_new_thing", "anything": [1, 2]},
    }
    model = validate_message(incoming)
    assert model.model_dump()["anything"] == [1, 2]


def test_models_check_what_they_know() -> None:
    spec = catalogue.lookup("opened")
    assert spec is not None
    with pytest.raises(ValidationError):
        spec.validate({"trigger": "keyboard"})  # no type
    with pytest.raises(ValidationError):
        validate_message(
            {
                "type": "track",
                "event": "Command Execution",
                "properties": {"type": "x", "previousCommands": 3},
            }
        )


def test_test_message_is_marked_and_overridable() -> None:
    message = catalogue.test_message(user_id="u-9", properties={"plan": "pro"})
    assert message["event"] == catalogue.TEST_EVENT
    assert message["properties"]["test"] is True
    assert message["properties"]["plan"] == "pro"
    assert message["userId"] == "u-9" and "anonymousId" not in message
    assert message["messageId"].startswith("cmdai-test-")
    other = catalogue.test_message()
    assert other["messageId"] != message["messageId"]
    assert other["anonymousId"].startswith("cmdai-anon-")
