"""The destination target: the Command AI SDK calls the destination makes."""

from __future__ import annotations

from typing import Any

import pytest

from cmdai_cli.mapping.destination import map_destination
from tests.mapping_samples import IDENTIFY, TRACK


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
