"""The events Command AI sends to a Segment source, as models with a sample of each.

Command AI forwards what its SDK's `addEventSubscriber` sees: one identify when the bar
boots and track events whose `properties.type` names the kind of event. Its SDK keeps
adding event names, so an unknown name is never an error: it gets the common properties
model and a generic sample.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cmdai_cli import __version__
from cmdai_cli.event_names import ALL, IN_SEGMENT_CATALOG

TEST_EVENT = "Command AI Test Event"
TEST_EVENT_TYPE = "cmdai_test"


class CommonProperties(BaseModel):
    """Properties on every Command AI event; anything else Command AI adds is kept."""

    model_config = ConfigDict(extra="allow")

    type: str
    end_user: Any = None
    organization: Any = None
    search: Any = None
    session: Any = None
    user_type: Any = None


class OpenedProperties(CommonProperties):
    trigger: Literal["launcher", "keyboard", "programmatic"] | str | None = None


class ClosedProperties(CommonProperties):
    inputText: str | None = None


class AbandonedSearchProperties(CommonProperties):
    inputText: str | None = None


class CommandSuggestionProperties(CommonProperties):
    text: str | None = None


class CommandExecutionProperties(CommonProperties):
    command: Any = None
    commandText: str | None = None
    category: Any = None
    source: str | None = None
    shortcut: Any = None
    ranking: Any = None
    previousCommands: list[Any] | None = None


class NoResultsProperties(CommonProperties):
    inputText: str | None = None


class NudgeProperties(CommonProperties):
    id: Any = None
    slug: str | None = None
    frequency_limit: Any = None
    on_select: Any = None
    trigger: Any = None


class ShortcutEditedProperties(CommonProperties):
    command: Any = None
    commandText: str | None = None
    oldShortcut: Any = None
    newShortcut: Any = None


class BootedTraits(BaseModel):
    """Traits of the identify Command AI sends when the bar boots."""

    model_config = ConfigDict(extra="allow")

    formFactor: Any = None
    userAttributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventSpec:
    """One Command AI event: its Segment name, its `properties.type`, and a sample."""

    name: str
    event_type: str
    segment_type: Literal["track", "identify"]
    model: type[BaseModel]
    sample: dict[str, Any] = field(repr=False)
    in_segment_catalog: bool = True

    def validate(self, payload: Mapping[str, Any]) -> BaseModel:
        """The properties (or, for identify, traits) as this event's model."""
        return self.model.model_validate(dict(payload))


def _common(kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "end_user": {"slug": "user-4821", "hmac": None},
        "organization": "org_10234",
        "search": "",
        "session": "0d4c2f8e-5b1a-4a57-9a43-2f7c6e8b1d90",
        "user_type": "likely-authenticated",
    }


def _props(kind: str, **extra: Any) -> dict[str, Any]:
    return {**_common(kind), **extra}


_NUDGE = {
    "id": 3417,
    "slug": "invite-your-team",
    "frequency_limit": "once",
    "on_select": {"type": "url", "value": "/settings/team"},
    "trigger": {"type": "when_page_reached", "meta": {"url": "/dashboard"}},
}

# properties.type -> (Segment message type, model, sample); an event not named here is a
# track with the common properties.
_DETAILS: dict[str, tuple[Literal["track", "identify"], type[BaseModel], dict[str, Any]]] = {
    "booted": (
        "identify",
        BootedTraits,
        {
            "formFactor": {"type": "modal"},
            "userAttributes": {"plan": "growth", "role": "admin", "signup_date": "2024-02-11"},
        },
    ),
    "opened": ("track", OpenedProperties, _props("opened", trigger="keyboard")),
    "closed": ("track", ClosedProperties, _props("closed", inputText="billing")),
    "abandoned_search": (
        "track",
        AbandonedSearchProperties,
        _props("abandoned_search", inputText="export csv", search="export csv"),
    ),
    "command_suggestion": (
        "track",
        CommandSuggestionProperties,
        _props("command_suggestion", text="Bulk archive projects"),
    ),
    "command_execution": (
        "track",
        CommandExecutionProperties,
        _props(
            "command_execution",
            command=1287,
            commandText="Invite teammate",
            category=42,
            source="bar",
            shortcut=["g", "i"],
            ranking=1,
            previousCommands=["Open settings"],
            search="invite",
        ),
    ),
    "no_results_for_query": (
        "track",
        NoResultsProperties,
        _props("no_results_for_query", inputText="sso saml", search="sso saml"),
    ),
    "shortcut_edited": (
        "track",
        ShortcutEditedProperties,
        _props(
            "shortcut_edited",
            command=1287,
            commandText="Invite teammate",
            oldShortcut=["g", "i"],
            newShortcut=["shift", "i"],
        ),
    ),
}


def _details(kind: str) -> tuple[Literal["track", "identify"], type[BaseModel], dict[str, Any]]:
    if kind in _DETAILS:
        return _DETAILS[kind]
    if kind.startswith("nudge_"):
        return "track", NudgeProperties, _props(kind, **_NUDGE)
    return "track", CommonProperties, _props(kind)


_SPECS: tuple[EventSpec, ...] = tuple(
    EventSpec(name, kind, *_details(kind), in_segment_catalog=(name, kind) in IN_SEGMENT_CATALOG)
    for name, kind in ALL
)


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "_", text.strip().lower())


_INDEX: dict[str, EventSpec] = {}
for _spec in _SPECS:
    _INDEX.setdefault(_key(_spec.name), _spec)
    _INDEX.setdefault(_key(_spec.event_type), _spec)


def events() -> tuple[EventSpec, ...]:
    """Every known event, those in Segment's catalog first."""
    return _SPECS


def lookup(name_or_type: str) -> EventSpec | None:
    """The event with this name or `properties.type`, ignoring case, spaces and '_'/'-'."""
    return _INDEX.get(_key(name_or_type))


def spec_for(name: str) -> EventSpec:
    """The known event, or a generic track event for a name Command AI added later."""
    known = lookup(name)
    if known is not None:
        return known
    kind = _key(name)
    return EventSpec(name, kind, "track", CommonProperties, _props(kind), in_segment_catalog=False)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_message_id(prefix: str = "cmdai") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def build_message(
    spec: EventSpec,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """A complete Segment message for `spec`, as Command AI would send it."""
    ids = _ids(user_id, anonymous_id)
    payload = {**spec.sample, **(properties or {})}
    if "end_user" in spec.sample and "end_user" not in (properties or {}):
        # The user the event is about: Command AI names the signed-in user there, and
        # nobody for an anonymous visitor.
        payload["end_user"] = {"slug": user_id, "hmac": None} if user_id is not None else None
    base = {
        **ids,
        "messageId": message_id or new_message_id(),
        "timestamp": _now(),
        "context": {},
    }
    if spec.segment_type == "identify":
        return {"type": "identify", **base, "traits": payload}
    return {"type": "track", "event": spec.name, **base, "properties": payload}


def test_event_spec() -> EventSpec:
    """cmdai's own test event: not Command AI's, so not among `events()`, but planned."""

    marked = {
        **_common(TEST_EVENT_TYPE),
        "test": True,
        "sent_by": f"cmdai {__version__}",
        "note": "Test event from cmdai send-test; safe to ignore.",
    }
    return EventSpec(TEST_EVENT, TEST_EVENT_TYPE, "track", CommonProperties, marked, False)


def test_message(
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The distinctive test event `cmdai send-test` sends when no event is named."""
    return build_message(
        test_event_spec(),
        user_id=user_id,
        anonymous_id=anonymous_id,
        properties=properties,
        message_id=message_id or new_message_id("cmdai-test"),
    )


def _ids(user_id: str | None, anonymous_id: str | None) -> dict[str, str]:
    if user_id is None and anonymous_id is None:
        anonymous_id = f"cmdai-anon-{uuid.uuid4().hex[:12]}"
    ids: dict[str, str] = {}
    if user_id is not None:
        ids["userId"] = user_id
    if anonymous_id is not None:
        ids["anonymousId"] = anonymous_id
    return ids
