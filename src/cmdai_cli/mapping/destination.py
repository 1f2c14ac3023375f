"""The destination target: the calls the Command AI destination makes, emulated.

* identify -> action ``identifyUser``: with deploy on, ``boot(userId, traits,
  options)`` where options holds ``hmac`` (``$.context.CommandBar.hmac``) and
  ``formFactor`` (``$.context.CommandBar.formFactor``) only when present; with deploy
  off, ``addMetadataBatch(traits, true)``. Absent traits are sent as ``{}``.
* track -> action ``trackEvent``: ``trackEvent(event, properties or {})``.
* other types make no call; identify without ``userId`` and track without ``event``
  are ignored; each with its reason.
"""

from __future__ import annotations

from typing import Any, cast

from cmdai_cli.mapping.paths import lookup
from cmdai_cli.mapping.result import (
    IDENTIFY_NO_USER_ID,
    NO_TYPE,
    NOT_AN_OBJECT,
    PROPERTIES_NOT_OBJECT,
    TRACK_NO_EVENT,
    TRAITS_NOT_OBJECT,
    Result,
)

__all__ = ["map_destination"]


def _ignored_call(reason: str) -> dict[str, Any]:
    return {"action": None, "call": None, "args": [], "ignored": reason}


def map_destination(event: Any, *, deploy: bool = False, explain: bool = False) -> Result:
    """The Command AI SDK call the Command AI destination makes for `event`."""
    if type(event) is not dict:
        return None, NOT_AN_OBJECT
    kind = event.get("type")
    if kind == "identify":
        traits = event.get("traits")
        if traits is None:
            traits = {}
        elif type(traits) is not dict:
            return None, TRAITS_NOT_OBJECT
        user_id = event.get("userId")
        if user_id is None or user_id == "":
            return _ignored_call(IDENTIFY_NO_USER_ID), None
        record: dict[str, Any]
        if deploy:
            options: dict[str, Any] = {}
            sdk = lookup(event, ("context", "CommandBar"))
            if type(sdk) is dict:
                for key in ("hmac", "formFactor"):
                    value = sdk.get(key)
                    if value is not None:
                        options[key] = value
            record = {
                "action": "identifyUser",
                "call": "boot",
                "args": [user_id, traits, options],
                "ignored": None,
            }
        else:
            record = {
                "action": "identifyUser",
                "call": "addMetadataBatch",
                "args": [traits, True],
                "ignored": None,
            }
        if explain:
            record["explain"] = _explain_identify(deploy, cast(list[Any], record["args"]))
        return record, None
    if kind == "track":
        name = event.get("event")
        properties = event.get("properties")
        if properties is None:
            properties = {}
        elif type(properties) is not dict:
            return None, PROPERTIES_NOT_OBJECT
        if name is None or name == "":
            return _ignored_call(TRACK_NO_EVENT), None
        record = {
            "action": "trackEvent",
            "call": "trackEvent",
            "args": [name, properties],
            "ignored": None,
        }
        if explain:
            record["explain"] = {
                "event_name": {"path": "$.event"},
                "event_metadata": {"path": "$.properties"},
            }
        return record, None
    if kind is None or kind == "":
        return _ignored_call(NO_TYPE), None
    return _ignored_call(f"{kind} events make no call" if type(kind) is str else NO_TYPE), None


def _explain_identify(deploy: bool, args: list[Any]) -> dict[str, Any]:
    why: dict[str, Any] = {"traits": {"path": "$.traits"}}
    if deploy:
        why = {"userId": {"path": "$.userId"}, **why}
        for key in args[2]:
            why[key] = {"path": f"$.context.CommandBar.{key}"}
    return why
