"""The destination target: the Command AI SDK calls the destination makes.

The first cases are the destination's own unit tests (segmentio/action-destinations,
`packages/browser-destinations/destinations/commandbar/src/{identifyUser,trackEvent}/
__tests__/index.test.ts`); the rest follow each branch of its `perform` functions and of
JavaScript's `||` and `!!` on the values an event can hold.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from cmdai_cli.mapping.destination import js_truthy, map_destination
from tests.mapping_samples import IDENTIFY, TRACK


def call(event: Any, *, deploy: bool = False) -> tuple[str | None, list[Any]]:
    record, problem = map_destination(event, deploy=deploy)
    assert problem is None and record is not None
    return record["call"], record["args"]


# ------------------------------------------------------------ the destination's own tests


def test_upstream_can_add_metadata_via_identify() -> None:
    event = {"type": "identify", "userId": "test-user", "traits": {"foo": "bar"}}
    assert call(event, deploy=False) == ("addMetadataBatch", [{"foo": "bar"}, True])


def test_upstream_can_boot_via_identify() -> None:
    event = {"type": "identify", "userId": "test-user", "traits": {"foo": "bar"}}
    assert call(event, deploy=True) == ("boot", ["test-user", {"foo": "bar"}, {}])


def test_upstream_can_pass_instance_attributes_to_boot() -> None:
    form_factor = {"type": "inline", "rootElement": "commandbar-inline-root"}
    event = {
        "type": "identify",
        "userId": "test-user",
        "traits": {"foo": "bar"},
        "context": {"CommandBar": {"hmac": "x", "formFactor": form_factor}},
    }
    assert call(event, deploy=True) == (
        "boot",
        ["test-user", {"foo": "bar"}, {"hmac": "x", "formFactor": form_factor}],
    )


def test_upstream_sends_events_to_commandbar() -> None:
    event = {"type": "track", "event": "example-event", "properties": {"foo": "bar"}}
    assert call(event) == ("trackEvent", ["example-event", {"foo": "bar"}])


# ------------------------------------------------------------ the branches of its code


def test_identify_with_deploy_boots_with_only_present_options() -> None:
    record, _ = map_destination(IDENTIFY, deploy=True)
    assert record == {
        "action": "identifyUser",
        "call": "boot",
        "args": ["u1", IDENTIFY["traits"], {"hmac": "h1", "formFactor": {"type": "modal"}}],
        "ignored": None,
    }
    assert call({"type": "identify", "userId": "u1"}, deploy=True) == ("boot", ["u1", {}, {}])


def test_identify_without_deploy_adds_metadata() -> None:
    record, _ = map_destination(IDENTIFY, deploy=False)
    assert record == {
        "action": "identifyUser",
        "call": "addMetadataBatch",
        "args": [IDENTIFY["traits"], True],
        "ignored": None,
    }


@pytest.mark.parametrize(
    "event",
    [
        {"type": "identify", "traits": {"a": 1}},
        {"type": "identify", "userId": "", "traits": {"a": 1}},
        {"type": "identify", "userId": None, "traits": {"a": 1}},
    ],
)
def test_identify_without_user_id_still_calls(event: dict[str, Any]) -> None:
    # The runtime checks no required field: perform runs with userId undefined.
    assert call(event) == ("addMetadataBatch", [{"a": 1}, True])
    user_id = event.get("userId")
    assert call(event, deploy=True) == ("boot", [user_id, {"a": 1}, {}])


@pytest.mark.parametrize(
    ("traits", "sent"),
    [
        (None, {}),
        (False, {}),
        (0, {}),
        ("", {}),
        ({}, {}),
        ([], []),
        ("plan=pro", "plan=pro"),
        (5, 5),
        ([1, 2], [1, 2]),
    ],
)
def test_traits_or_empty_object(traits: Any, sent: Any) -> None:
    # `event.payload.traits || {}`: falsy becomes {}, anything truthy goes as it is.
    event = {"type": "identify", "userId": "u", "traits": traits}
    assert call(event) == ("addMetadataBatch", [sent, True])
    assert call(event, deploy=True) == ("boot", ["u", sent, {}])


@pytest.mark.parametrize(
    ("command_bar", "options"),
    [
        ({"hmac": "", "formFactor": False}, {}),
        ({"hmac": None, "formFactor": 0}, {}),
        ({"hmac": 0, "formFactor": None}, {}),
        ({"hmac": "h", "formFactor": {}}, {"hmac": "h", "formFactor": {}}),
        ({"hmac": [], "formFactor": "modal"}, {"hmac": [], "formFactor": "modal"}),
        ({"hmac": 7}, {"hmac": 7}),
        ("not an object", {}),
        (["hmac"], {}),
    ],
)
def test_boot_options_only_when_truthy(command_bar: Any, options: dict[str, Any]) -> None:
    # `...(!!payload.hmac && { hmac })`: "" and false are dropped, {} and [] are kept.
    event = {"type": "identify", "userId": "u", "context": {"CommandBar": command_bar}}
    assert call(event, deploy=True) == ("boot", ["u", {}, options])


def test_track_calls_track_event_with_properties_or_empty() -> None:
    record, _ = map_destination(TRACK)
    assert record == {
        "action": "trackEvent",
        "call": "trackEvent",
        "args": ["Plan Upgraded", TRACK["properties"]],
        "ignored": None,
    }
    assert call({"type": "track", "event": "Opened"}) == ("trackEvent", ["Opened", {}])


@pytest.mark.parametrize(
    ("properties", "sent"),
    [(None, {}), (False, {}), (0, {}), ("", {}), (3, 3), ("x", "x"), ([], [])],
)
def test_event_metadata_or_empty_object(properties: Any, sent: Any) -> None:
    event = {"type": "track", "event": "Opened", "properties": properties}
    assert call(event) == ("trackEvent", ["Opened", sent])


@pytest.mark.parametrize("name", [5, True, ["x"], {"a": 1}])
def test_a_truthy_event_name_of_any_kind_calls(name: Any) -> None:
    assert call({"type": "track", "event": name}) == ("trackEvent", [name, {}])


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"type": "page", "userId": "u"}, "page events make no call"),
        ({"type": "group", "userId": "u"}, "group events make no call"),
        ({"type": "alias", "userId": "u"}, "alias events make no call"),
        ({"userId": "u"}, "event has no type"),
        ({"type": "track", "userId": "u"}, "track without event"),
        ({"type": "track", "event": None}, "track without event"),
        ({"type": "track", "event": ""}, "track without event"),
        ({"type": "track", "event": 0}, "track without event"),
        ({"type": "track", "event": False}, "track without event"),
    ],
)
def test_events_that_make_no_call(event: dict[str, Any], reason: str) -> None:
    assert map_destination(event, deploy=True) == (
        {"action": None, "call": None, "args": [], "ignored": reason},
        None,
    )


def test_destination_bad_records() -> None:
    assert map_destination([1, 2]) == (None, "event is not a JSON object")


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (math.nan, False),
        ("", False),
        (True, True),
        (1, True),
        (-1.5, True),
        ("0", True),
        ("false", True),
        ({}, True),
        ([], True),
    ],
)
def test_js_truthy(value: Any, truthy: bool) -> None:
    assert js_truthy(value) is truthy


def test_explain_names_the_paths_each_argument_came_from() -> None:
    record, _ = map_destination(IDENTIFY, deploy=True, explain=True)
    assert record is not None and record["explain"] == {
        "userId": {"path": "$.userId"},
        "traits": {"path": "$.traits"},
        "hmac": {"path": "$.context.CommandBar.hmac"},
        "formFactor": {"path": "$.context.CommandBar.formFactor"},
    }
    record, _ = map_destination(IDENTIFY, explain=True)
    assert record is not None and record["explain"] == {"traits": {"path": "$.traits"}}
    record, _ = map_destination(TRACK, explain=True)
    assert record is not None and record["explain"] == {
        "event_name": {"path": "$.event"},
        "event_metadata": {"path": "$.properties"},
    }
