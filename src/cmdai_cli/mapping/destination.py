"""The destination target: the calls the Command AI destination makes, emulated.

Matched case by case to the destination's code (segmentio/action-destinations,
``packages/browser-destinations/destinations/commandbar/src/{identifyUser,trackEvent}/
index.ts``) and to its runtime (``packages/browser-destination-runtime/src/plugin.ts``),
which maps the event with the subscription's mapping (mapping-kit ``transform``: a
``@path`` that finds nothing leaves the field out) and calls ``perform`` without
checking required fields. The default subscriptions are the destination's presets:
``type = "identify"`` -> ``identifyUser``, ``type = "track"`` -> ``trackEvent``.

* identify -> ``identifyUser``: ``traits = payload.traits || {}``; with deploy on,
  ``boot(userId, traits, options)``, where options holds ``hmac``
  (``$.context.CommandBar.hmac``) and ``formFactor`` (``$.context.CommandBar.formFactor``)
  only when truthy (``""``, ``false``, ``0`` and ``null`` are dropped; ``{}`` is kept);
  with deploy off, ``addMetadataBatch(traits, true)``. A missing userId still makes the
  call: ``boot(undefined, ...)``, shown as null.
* track -> ``trackEvent``: when the event name is truthy,
  ``trackEvent(event, properties || {})``; a falsy name makes no call.
* other types match no subscription and make no call.

Every value passed is mapping-kit's copy (`kit`): own `__proto__` keys are gone from it.

JavaScript's truthiness decides, not Python's: ``{}`` and ``[]`` are truthy, ``0`` and
``""`` are not.
"""

from __future__ import annotations

import math
from typing import Any, cast

from cmdai_cli.mapping import NO_TYPE, NOT_AN_OBJECT, TRACK_NO_EVENT, Mapped
from cmdai_cli.mapping.kit import ProtoKeys, assign_copy
from cmdai_cli.mapping.paths import MISSING, lookup

__all__ = ["js_truthy", "map_destination"]


def js_truthy(value: Any) -> bool:
    """JavaScript's truthiness of a JSON value (`undefined` is None here)."""
    if value is None or value is False:
        return False
    if type(value) is str:
        return value != ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    return True


def _ignored_call(reason: str) -> dict[str, Any]:
    return {"action": None, "call": None, "args": [], "ignored": reason}


def map_destination(event: Any, *, deploy: bool = False, explain: bool = False) -> Mapped:
    """The Command AI SDK call the Command AI destination makes for `event`."""
    if type(event) is not dict:
        if isinstance(event, ProtoKeys):
            copied, problem = map_destination(dict(event), deploy=deploy, explain=explain)
            if copied is not None:
                copied["args"] = assign_copy(copied["args"])
            return copied, problem
        return None, NOT_AN_OBJECT
    kind = event.get("type")
    if kind == "identify":
        traits = event.get("traits")
        # `event.payload.traits || {}`: any truthy value goes through as it is.
        if not js_truthy(traits):
            traits = {}
        record: dict[str, Any]
        if deploy:
            options: dict[str, Any] = {}
            for key in ("hmac", "formFactor"):
                value = lookup(event, ("context", "CommandBar", key))
                if value is not MISSING and js_truthy(value):
                    options[key] = value
            record = {
                "action": "identifyUser",
                "call": "boot",
                "args": [event.get("userId"), traits, options],
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
        if not js_truthy(name):
            return _ignored_call(TRACK_NO_EVENT), None
        # `event.payload.event_metadata || {}`.
        properties = event.get("properties")
        record = {
            "action": "trackEvent",
            "call": "trackEvent",
            "args": [name, properties if js_truthy(properties) else {}],
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
