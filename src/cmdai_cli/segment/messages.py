"""Segment's Tracking API limits and message rules, written once.

The receiver flags what breaks a rule (Segment answers 200 and drops it later); the
sender and replay refuse to send it. Both read the rules from `broken_rules`, so they
cannot disagree. Only the standard library is imported: the mapping rules and replay's
batcher read the limits without loading the Segment library or the receiver.

Source for the rules and limits: Segment's HTTP Tracking API docs (segment-docs
`connections/sources/catalog/libraries/server/http-api`): a userId or anonymousId on
every call (alias: previousId and userId), an event name on track, a groupId on group,
32 KB per message, 500 KB and 2500 messages per batch request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple

# The Tracking API of each region (Segment's HTTP API docs, as above; data sent to the
# other region's host is dropped without an error).
REGION_HOSTS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}
MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024
# Segment documents "500 KB" per batch request. The receiver accepts the binary reading;
# senders keep to the decimal one, so that neither reading refuses what they send.
MAX_BATCH_BYTES = 500 * 1024
SEND_BATCH_BYTES = 500_000
MAX_BATCH_MESSAGES = 2500
MAX_MESSAGE_ID = 100
# "For each workspace, Segment recommends you to not exceed 1,000 requests per second with
# the HTTP API", past which it may answer 429 (segment-docs http-api/index.md, "Rate
# limits"). A replay keeps a tenth below, as the workspace's other sources send too.
MAX_REQUESTS_PER_SECOND = 1000
REPLAY_REQUESTS_PER_SECOND = 900

_TYPES = frozenset(MESSAGE_TYPES)
_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")


class Rule(NamedTuple):
    """One of Segment's rules: `flag` names a break in a receiver's listing, `problem`
    says it as a sentence (`{type}` and `{id_length}` are filled in from the message)."""

    flag: str
    problem: str


UNKNOWN_TYPE = Rule("unknown type", "type {type!r} is not one of " + ", ".join(MESSAGE_TYPES))
NO_PREVIOUS_ID = Rule("no previousId", "an alias needs previousId and userId")
NO_ALIAS_USER_ID = Rule("no userId", "an alias needs previousId and userId")
NO_IDENTITY = Rule("no userId or anonymousId", "the message has neither userId nor anonymousId")
NO_EVENT = Rule("track without event", "a track needs an event name")
NO_GROUP_ID = Rule("no groupId", "a group needs groupId")
LONG_MESSAGE_ID = Rule(
    "messageId over 100 characters",
    "messageId has {id_length} characters; Segment allows " + str(MAX_MESSAGE_ID),
)


def broken_rules(message: Mapping[str, Any]) -> tuple[Rule, ...]:
    """The rules this message breaks, in a fixed order; () for a good message.

    The receiver calls this for every message it accepts and replay for every event it
    sends, so a good message costs a few dictionary lookups and nothing is built for it.
    An id that is missing, null or "" counts as absent.
    """
    # Truthiness first: a present id costs one test, and only a falsy one is looked at
    # again (0 and False are ids; None and "" are not).
    get = message.get
    kind = get("type")
    broken: tuple[Rule, ...] = ()
    # A list or object as `type` is unhashable: test the type before the set.
    if type(kind) is not str or kind not in _TYPES:
        broken += (UNKNOWN_TYPE,)
    user_id = get("userId")
    no_user = not user_id and (user_id is None or user_id == "")
    if kind == "alias":
        previous_id = get("previousId")
        if not previous_id and (previous_id is None or previous_id == ""):
            broken += (NO_PREVIOUS_ID,)
        if no_user:
            broken += (NO_ALIAS_USER_ID,)
    elif no_user:
        anonymous_id = get("anonymousId")
        if not anonymous_id and (anonymous_id is None or anonymous_id == ""):
            broken += (NO_IDENTITY,)
    if kind == "track":
        event = get("event")
        if type(event) is not str or not event:
            broken += (NO_EVENT,)
    elif kind == "group":
        group_id = get("groupId")
        if not group_id and (group_id is None or group_id == ""):
            broken += (NO_GROUP_ID,)
    message_id = get("messageId")
    if message_id is not None:
        length = len(message_id) if type(message_id) is str else len(str(message_id))
        if length > MAX_MESSAGE_ID:
            broken += (LONG_MESSAGE_ID,)
    return broken


def flags_for(message: Mapping[str, Any]) -> tuple[str, ...]:
    """The rules broken, as a receiver lists them: what Segment would take and then drop."""
    broken = broken_rules(message)
    return tuple(rule.flag for rule in broken) if broken else ()


def parse_timestamp(value: Any) -> datetime | None:
    """A message's timestamp as the library wants it: an aware datetime (UTC if naive).

    Raises ValueError for anything that is not ISO-8601 (Python 3.10 reads no `Z`).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise ValueError(f"timestamp must be an ISO-8601 string, got {type(value).__name__}")


_fromisoformat = datetime.fromisoformat


def message_problem(message: Mapping[str, Any]) -> str | None:
    """Why Segment would drop or refuse this message, its size apart; None when it would not.

    Segment's rules first, then what the library needs to build the call (objects where
    it expects objects, an ISO-8601 timestamp). Replay calls this for every event, so it
    sticks to cheap checks; `check_message` adds the size.
    """
    broken = broken_rules(message)
    if broken:
        message_id = message.get("messageId")
        return broken[0].problem.format(
            type=message.get("type"), id_length=len(str(message_id)) if message_id else 0
        )
    for name in _OBJECT_FIELDS:
        value = message.get(name)
        if value is not None and type(value) is not dict and not isinstance(value, Mapping):
            return f"{name} must be an object"
    stamp = message.get("timestamp")
    if stamp is not None and type(stamp) is not datetime:
        try:
            # The common case first: on 3.11+ fromisoformat reads every ISO-8601 form.
            _fromisoformat(stamp)
        except (TypeError, ValueError):
            try:
                parse_timestamp(stamp)
            except ValueError as exc:
                return f"timestamp {stamp!r} is not ISO-8601 ({exc})"
    return None


def check_message(message: Mapping[str, Any]) -> str | None:
    """Why Segment would not take this message as given, or None when it would."""
    problem = message_problem(message)
    if problem is not None:
        return problem
    size = message_size(message)
    if size > MAX_MESSAGE_BYTES:
        return f"the message is {size} bytes; Segment's limit is {MAX_MESSAGE_BYTES} (32 KB)"
    return None


def message_size(message: Mapping[str, Any]) -> int:
    """Bytes of the message as the library measures it, its own context.library included."""
    measured = dict(message)
    context = dict(measured.get("context") or {})
    context["library"] = {"name": "analytics-python", "version": "0.0.0"}
    measured["context"] = context
    return len(json.dumps(measured, default=str).encode())
