"""The webhook subscription's trigger: the FQL subset Segment's subscriptions read."""

from __future__ import annotations

import pytest

from cmdai_cli.destination.trigger import check_trigger
from cmdai_cli.errors import UsageError


@pytest.mark.parametrize(
    "trigger",
    [
        'type = "identify"',
        '  type = "track" and event = "Opened"  ',
        'type = "track" and (event = "A" or event = "B")',
        '(event = "A" and properties.price >= 100) or (event = "B" and properties.total < 5)',
        "properties.price >= 100",
        "properties.premium = true",
        "userId != null",
        "traits.plan = null",
        '!contains(event, "Nike")',
        'contains(properties.name, "x")',
        'match(event, "Nudge*")',
        '!match(traits.email, "*@example.com")',
        'event = "Say \\"hi\\""',
        'name = "Home"',
        "properties.delta = -1.5",
    ],
)
def test_triggers_segment_reads(trigger: str) -> None:
    assert check_trigger(trigger) == trigger.strip()


@pytest.mark.parametrize(
    ("trigger", "why"),
    [
        ("", "the trigger is empty"),
        ("type =", "a value is missing at the end"),
        ('type = "bogus"', "type 'bogus' is not one of Segment's types"),
        ("typo", "'typo' is not a field a trigger can test"),
        ("properties = 1", "'properties' is not a field"),
        ('type * "x"', "unexpected '*'"),
        ("type = 'track'", "strings take double quotes"),
        ('type = "track" and event = "a" or event = "b"', "'and' and 'or' are mixed"),
        ('(type = "track"', "')' is missing at the end"),
        ('(type = "track" "x"', "expected ')'"),
        ('match(event, "X")', "patterns start or end with *"),
        ('contains(event "X")', "expected ','"),
        ("contains(event, 3)", 'takes a "string"'),
        ('contains event, "x")', "expected '(' after contains"),
        ('contains(event, "x"', "')' is missing"),
        ('!type = "track"', "'!' goes only before contains"),
        ("event = null", "event = null is not a test"),
        ("properties.n > null", "is not a test Segment reads"),
        ("event = (", "expected a value"),
        ("= 3", "expected a field"),
        ('type "track"', "expected an operator"),
        ('type = "track" extra', "expected 'and' or 'or', found 'extra'"),
        ('type = "track")', "unexpected ')'"),
    ],
)
def test_triggers_segment_cannot_read_are_refused(trigger: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        check_trigger(trigger)
    assert why in str(info.value)
