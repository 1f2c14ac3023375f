"""`GET /cmdai/catalogue`: the collector checks its kept messages against Command AI's
catalogue, for `cmdai expect --catalogue`.

The check (the built-in plan, and a track's `properties.type` that belongs to another
event) is `expect --catalogue`'s whatever the source; a collector runs it where the
messages are: moving and decoding 100,000 messages to check them took
`expect --catalogue` 1.35-1.45 s (benchmarks/expect.py). Each kept message is checked
once, when first asked, and its answer kept while the message is: a CI step that polls
pays only for what arrived since its last look.

The answer: `{"checked": N, "broken": [{"receivedAt", "flags", "message", "problems"}]}`,
in the order `expect.check.check_catalogue` gives them from a capture file (tracks,
then identifies, each oldest first).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import orjson

from cmdai_cli.event_names import ALL
from cmdai_cli.plans import Validator, builtin_plan
from cmdai_cli.receiver.store import Store

TRACK_NAMES = tuple(name for name, kind in ALL if kind != "booted")
BOOT_TRAITS = ("formFactor", "userAttributes")
_TYPE_OF = {name: kind for name, kind in ALL}
_NAME_OF = {kind: name for name, kind in ALL}
_TRACK_NAMES = frozenset(TRACK_NAMES)
# What a kept message came to: not a Command AI event, or its problems ([]: none).
_Outcome = list[str] | None


def is_command_ai_event(message: Mapping[str, Any]) -> bool:
    """A track named in Command AI's catalogue, or the identify its bar sends on boot."""
    kind = message.get("type")
    if kind == "track":
        event = message.get("event")
        return type(event) is str and event in _TYPE_OF
    traits = message.get("traits")
    return kind == "identify" and isinstance(traits, dict) and any(k in traits for k in BOOT_TRAITS)


def name_problems(message: Mapping[str, Any]) -> list[str]:
    """A track whose `properties.type` belongs to another Command AI event."""
    properties = message.get("properties")
    event = message.get("event")
    if message.get("type") != "track" or not isinstance(properties, dict):
        return []
    kind = properties.get("type")
    if not isinstance(kind, str) or kind == _TYPE_OF.get(str(event)):
        return []
    owner = _NAME_OF.get(kind)
    if owner is None:
        return [f"/properties/type: {kind!r} is not {event}'s type {_TYPE_OF.get(str(event))!r}"]
    return [f"/properties/type: {kind!r} is the type of {owner!r}, not of {event!r}"]


def catalogue_problems(validator: Validator, message: Mapping[str, Any]) -> list[str]:
    """How a Command AI event breaks the catalogue ([]: it keeps it)."""
    found = [f"{v.pointer or '/'}: {v.message}" for v in validator.check(message)]
    return found + name_problems(message)


class CatalogueCheck:
    """The catalogue's verdict on each kept message, worked out once per message."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._validator: Validator | None = None
        self._since: str | None = None
        self._outcomes: dict[int, _Outcome] = {}
        self._lock = threading.Lock()

    def _judge(self, message: Any) -> _Outcome:
        if not isinstance(message, dict) or not is_command_ai_event(message):
            return None
        if self._validator is None:
            self._validator = Validator(builtin_plan())
        return catalogue_problems(self._validator, message)

    def answer(self) -> dict[str, Any]:
        with self._lock:
            since = self.store.summary()["since"]
            base, rows = self.store.numbered_rows()
            if since != self._since:
                # Forgotten since the last look: numbers count from the reset now.
                self._since = since
                self._outcomes = {}
            outcomes = self._outcomes
            for seq in [seq for seq in outcomes if seq < base]:
                del outcomes[seq]
            checked = 0
            tracks: list[dict[str, Any]] = []
            identifies: list[dict[str, Any]] = []
            for position, row in enumerate(rows):
                kind, event = row[4], row[5]
                if not (kind == "identify" or (kind == "track" and event in _TRACK_NAMES)):
                    continue
                seq = base + position
                if seq in outcomes:
                    outcome = outcomes[seq]
                else:
                    outcome = outcomes[seq] = self._judge(orjson.loads(row[0]))
                if outcome is None:
                    continue
                checked += 1
                if outcome:
                    broken = {
                        "receivedAt": row[2],
                        "flags": list(row[1]),
                        "message": orjson.loads(row[0]),
                        "problems": outcome,
                    }
                    (tracks if kind == "track" else identifies).append(broken)
            return {"checked": checked, "broken": tracks + identifies}
