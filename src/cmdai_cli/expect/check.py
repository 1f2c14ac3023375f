"""Checking what a collector received: expectations, flagged messages, the catalogue.

An expectation counts the messages that match all it names (type, event, user, each
property by JSON equality: 1 and true differ). One that does not hold is explained by
its nearest messages, those that differ in the fewest ways (the same event with other
properties, the same properties from another user), each with what differs.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from cmdai_cli.expect.expectations import Expectation
from cmdai_cli.expect.sources import Counts, Item, Source
from cmdai_cli.plans import Validator
from cmdai_cli.plans.check import violation_flag
from cmdai_cli.receiver.conformance import TRACK_NAMES, catalogue_problems, is_command_ai_event
from cmdai_cli.receiver.store import Query
from cmdai_cli.values import plural

NEAREST = 3
# Candidates looked at for the nearest messages: the newest of each kind asked for.
NEAR_POOL = 5000
EXAMPLES = 5
_MISSING = object()
# Command AI's track events by name; its identify is told by the traits it boots with.


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: true is not 1, "1" is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def payload(message: Mapping[str, Any]) -> Any:
    """Where a message's properties are: traits for identify and group."""
    if message.get("type") in ("identify", "group"):
        return message.get("traits")
    return message.get("properties")


def lookup(data: Any, key: str) -> Any:
    """`data[key]`, else the dotted path `a.b` inside it; `_MISSING` when absent."""
    if not isinstance(data, dict):
        return _MISSING
    if key in data:
        return data[key]
    if "." in key:
        for part in key.split("."):
            if not isinstance(data, dict) or part not in data:
                return _MISSING
            data = data[part]
        return data
    return _MISSING


def query_for(expectation: Expectation) -> Query:
    """What the collector can filter on its side; properties are compared here."""
    return Query(
        types=[expectation.type] if expectation.type else [],
        events=list(expectation.event_names()),
        user_ids=[expectation.user_id] if expectation.user_id is not None else [],
    )


def differences(expectation: Expectation, item: Item) -> list[str]:
    """How a message differs from what is expected, one phrase per difference."""
    message = item.message
    found: list[str] = []

    def shown(value: Any) -> str:
        return "missing" if value is _MISSING else json.dumps(value, ensure_ascii=False)

    if expectation.type and message.get("type") != expectation.type:
        found.append(f"type {shown(message.get('type', _MISSING))}")
    names = expectation.event_names()
    if names and message.get("event") not in names:
        found.append(f"event {shown(message.get('event', _MISSING))}")
    user = expectation.user_id
    if user is not None and str(message.get("userId")) != user:
        found.append(f"userId {shown(message.get('userId', _MISSING))}")
    data = payload(message)
    where = "traits" if message.get("type") in ("identify", "group") else "properties"
    for key, value in expectation.properties.items():
        got = lookup(data, key)
        if got is _MISSING or not same(got, value):
            found.append(f"{where}.{key} {shown(got)} (expected {shown(value)})")
    return found


def matches(expectation: Expectation, item: Item) -> bool:
    if not expectation.properties:
        return True
    data = payload(item.message)
    return all(
        (got := lookup(data, key)) is not _MISSING and same(got, value)
        for key, value in expectation.properties.items()
    )


class Near(NamedTuple):
    item: Item
    differences: list[str]

    def as_dict(self) -> dict[str, Any]:
        message = self.item.message
        return {
            "receivedAt": self.item.received_at,
            "messageId": message.get("messageId"),
            "type": message.get("type"),
            "event": message.get("event"),
            "userId": message.get("userId"),
            "differences": self.differences,
        }


@dataclass
class Outcome:
    """One expectation, checked: how many matched, whether that holds, and why not."""

    expectation: Expectation
    found: int
    met: bool
    nearest: list[Near] = field(default_factory=list)
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "expect": self.expectation.as_dict(),
            "met": self.met,
            "found": self.found,
            "wanted": self.expectation.wanted(),
        }
        if self.expectation.line is not None:
            data["line"] = self.expectation.line
        if not self.met:
            data["nearest"] = [near.as_dict() for near in self.nearest]
            data["hint"] = self.hint
        return data


@dataclass
class FlaggedOutcome:
    """`--no-flagged`: how many messages were flagged, by flag, with a few of them."""

    flagged: int
    by_flag: dict[str, int]
    examples: list[Item]

    @property
    def met(self) -> bool:
        return self.flagged == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "met": self.met,
            "flagged": self.flagged,
            "byFlag": self.by_flag,
            "examples": [_example(item, list(item.flags)) for item in self.examples],
        }


@dataclass
class CatalogueOutcome:
    """`--catalogue`: Command AI events checked against the catalogue, and those that break it."""

    checked: int
    broken: list[tuple[Item, list[str]]]

    @property
    def met(self) -> bool:
        return not self.broken

    def as_dict(self) -> dict[str, Any]:
        return {
            "met": self.met,
            "checked": self.checked,
            "broken": len(self.broken),
            "examples": [_example(item, problems) for item, problems in self.broken[:EXAMPLES]],
        }


def _example(item: Item, problems: list[str]) -> dict[str, Any]:
    message = item.message
    return {
        "receivedAt": item.received_at,
        "messageId": message.get("messageId"),
        "type": message.get("type"),
        "event": message.get("event"),
        "userId": message.get("userId"),
        "problems": problems,
    }


class Looker:
    """One look at a source: each distinct query asked once, whatever asks for it."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._answers: dict[tuple[Any, ...], list[Item]] = {}
        self._counts: Counts | None = None

    def messages(self, query: Query) -> list[Item]:
        key = (
            tuple(query.types),
            tuple(query.events),
            tuple(query.user_ids),
            tuple(query.anonymous_ids),
            query.flagged,
            query.since,
            query.limit,
        )
        if key not in self._answers:
            self._answers[key] = self.source.messages(query)
        return self._answers[key]

    def counts(self) -> Counts:
        if self._counts is None:
            self._counts = self.source.counts()
        return self._counts


def check_expectation(looker: Looker, expectation: Expectation) -> Outcome:
    found = sum(1 for item in looker.messages(query_for(expectation)) if matches(expectation, item))
    outcome = Outcome(expectation, found, expectation.holds(found))
    counts = looker.counts()
    if outcome.met and counts.dropped and expectation.bounds[1] is not None:
        # Matching messages may be among those dropped: a count or a maximum met by
        # what is left proves nothing, while a minimum met stays met.
        outcome.met = False
        keep = f"listen --keep {counts.keep}" if counts.keep is not None else "listen --keep"
        outcome.hint = (
            f"cannot check {expectation.wanted()}: the collector dropped {counts.dropped} "
            f"of {counts.received} messages ({keep}); give it a larger --keep"
        )
    return outcome


def explain(looker: Looker, outcome: Outcome) -> None:
    """Fill in the nearest messages and a hint for an expectation that does not hold."""
    expectation = outcome.expectation
    if outcome.hint:
        # Not met for a reason of its own (dropped messages), not for what arrived.
        return
    high = expectation.bounds[1]
    if high is not None and outcome.found > high:
        outcome.hint = f"{outcome.found} messages match; expected {expectation.wanted()}"
        return
    names = list(expectation.event_names())
    counts = looker.counts()
    close: list[str] = []
    if names and not any(counts.by_event.get(name) for name in names):
        close = difflib.get_close_matches(names[0], list(counts.by_event), n=3, cutoff=0.6)
    # The same event from anyone, the same user's other messages, and (for properties
    # without an event) every message of the type: the newest of each.
    pools: list[Query] = []
    if names:
        pools.append(Query(events=names + close, limit=NEAR_POOL))
    if expectation.user_id is not None:
        pools.append(Query(user_ids=[expectation.user_id], limit=NEAR_POOL))
    if not pools or (expectation.properties and not names):
        types = [expectation.type] if expectation.type else []
        pools.append(Query(types=types, limit=NEAR_POOL))
    candidates: dict[bytes, tuple[int, int, Near]] = {}
    for pool in pools:
        for order, item in enumerate(reversed(looker.messages(pool))):
            # Pools overlap, and each answer is decoded apart: one message, one key.
            key = orjson.dumps([item.received_at, item.message])
            if key in candidates:
                continue
            found = differences(expectation, item)
            if found:
                # Fewest differences first; a different event weighs more; newest first.
                weight = len(found) + sum(1 for d in found if d.startswith(("event", "type")))
                candidates[key] = (weight, order, Near(item, found))
    ranked = sorted(candidates.values(), key=lambda entry: (entry[0], entry[1]))
    outcome.nearest = [near for _, _, near in ranked[:NEAREST]]
    if close:
        outcome.hint = (
            f"no {names[0]!r} events; did you mean " + " or ".join(map(repr, close)) + "?"
        )
    elif not counts.received:
        outcome.hint = "the collector has received no messages"
    elif not outcome.nearest:
        outcome.hint = f"nothing like it among {_among(counts)}"
    elif outcome.found:
        outcome.hint = f"{outcome.found} messages match; expected {expectation.wanted()}"


def _among(counts: Counts) -> str:
    """The messages looked at: all received, or those kept of them."""
    if counts.kept < counts.received:
        return f"the {counts.kept} kept of {counts.received} messages received"
    return f"{counts.received} {plural(counts.received, 'message')}"


def check_flagged(looker: Looker) -> FlaggedOutcome:
    counts = looker.counts()
    examples: list[Item] = []
    if counts.flagged:
        examples = looker.messages(Query(flagged=True, limit=EXAMPLES))
    return FlaggedOutcome(counts.flagged, dict(counts.by_flag), examples)


def check_catalogue(looker: Looker, validator: Callable[[], Validator]) -> CatalogueOutcome:
    """`--catalogue` at the source: `validator()` gives the catalogue's plan when the
    messages are checked here."""
    # A running collector checks its own messages (receiver.conformance): nothing moves
    # but what breaks the catalogue.
    answer = looker.source.catalogue()
    if answer is not None:
        return CatalogueOutcome(*answer)
    items = looker.messages(Query(types=["track"], events=list(TRACK_NAMES)))
    items = items + looker.messages(Query(types=["identify"]))
    checked = 0
    broken: list[tuple[Item, list[str]]] = []
    for item in items:
        if not is_command_ai_event(item.message):
            continue
        checked += 1
        problems = catalogue_problems(validator(), item.message)
        if problems:
            broken.append((item, problems))
    return CatalogueOutcome(checked, broken)


def check_plan(looker: Looker, validator: Validator) -> CatalogueOutcome:
    """`--plan`: every message received, checked against a tracking plan."""
    items = looker.messages(Query())
    broken: list[tuple[Item, list[str]]] = []
    for item in items:
        found = validator.check(item.message)
        if found:
            broken.append((item, [f"{violation_flag(v)}: {v.message}" for v in found]))
    return CatalogueOutcome(len(items), broken)


def all_met(outcomes: Sequence[Outcome | FlaggedOutcome | CatalogueOutcome | None]) -> bool:
    return all(outcome is None or outcome.met for outcome in outcomes)
