"""Segment's message rules: one set, read by the receiver's flags and the sender's checks."""

from __future__ import annotations

from typing import Any

import pytest

from cmdai_cli.segment.messages import (
    MAX_MESSAGE_BYTES,
    broken_rules,
    check_message,
    flags_for,
    message_problem,
)

GOOD: list[dict[str, Any]] = [
    {"type": "track", "userId": "u", "event": "Opened"},
    {"type": "identify", "anonymousId": "a"},
    {"type": "page", "userId": "u"},
    {"type": "screen", "anonymousId": "a"},
    {"type": "group", "userId": "u", "groupId": "g"},
    {"type": "alias", "userId": "u", "previousId": "a"},
    {"type": "track", "userId": 0, "event": "Opened", "messageId": "m" * 100},
]


@pytest.mark.parametrize("message", GOOD)
def test_a_good_message_breaks_no_rule(message: dict[str, Any]) -> None:
    assert broken_rules(message) == ()
    assert flags_for(message) == ()
    assert message_problem(message) is None


@pytest.mark.parametrize(
    ("message", "flags", "problem"),
    [
        ({"type": "banana", "userId": "u"}, ("unknown type",), "type 'banana' is not one of"),
        ({"userId": "u"}, ("unknown type",), "type None is not one of"),
        ({"type": "track", "event": "x"}, ("no userId or anonymousId",), "the message has neither"),
        (
            {"type": "track", "userId": "", "anonymousId": None, "event": "x"},
            ("no userId or anonymousId",),
            "the message has neither userId nor anonymousId",
        ),
        ({"type": "track", "userId": "u"}, ("track without event",), "a track needs"),
        ({"type": "track", "userId": "u", "event": ""}, ("track without event",), "a track"),
        ({"type": "track", "userId": "u", "event": 3}, ("track without event",), "a track"),
        ({"type": "group", "userId": "u"}, ("no groupId",), "a group needs groupId"),
        ({"type": "alias", "userId": "u"}, ("no previousId",), "an alias needs"),
        (
            {"type": "alias", "anonymousId": "a"},
            ("no previousId", "no userId"),
            "an alias needs previousId and userId",
        ),
        (
            {"type": "identify", "userId": "u", "messageId": "m" * 101},
            ("messageId over 100 characters",),
            "messageId has 101 characters; Segment allows 100",
        ),
    ],
)
def test_a_broken_rule_is_a_flag_for_the_receiver_and_a_problem_for_the_sender(
    message: dict[str, Any], flags: tuple[str, ...], problem: str
) -> None:
    assert flags_for(message) == flags
    assert (message_problem(message) or "").startswith(problem)
    assert check_message(message) == message_problem(message)


def test_the_sender_also_needs_objects_and_an_iso_timestamp() -> None:
    good = {"type": "identify", "userId": "u"}
    assert message_problem({**good, "traits": [1]}) == "traits must be an object"
    assert (message_problem({**good, "timestamp": "yesterday"}) or "").startswith(
        "timestamp 'yesterday' is not ISO-8601"
    )
    assert message_problem({**good, "timestamp": "2024-05-01T12:00:00Z"}) is None
    # What only the library minds is not something Segment would drop: no flag.
    assert flags_for({**good, "traits": [1], "timestamp": "yesterday"}) == ()


def test_size_is_checked_after_the_rules() -> None:
    big = {"type": "identify", "userId": "u", "traits": {"blob": "x" * MAX_MESSAGE_BYTES}}
    assert "Segment's limit is 32768 (32 KB)" in (check_message(big) or "")
    assert message_problem(big) is None
