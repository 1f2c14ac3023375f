"""The webhook target: the Webhooks destination's data mapping, then Command AI's rules.

Webhook mapping
    A table from body field name to a source. A source string starting with ``$.`` is a
    path into the event (see `paths`); any other string is a literal. A path that finds
    nothing leaves the field out of the body; a path that finds ``null`` keeps it as
    ``null``. An absent or empty table means the whole event is the body (Segment's
    default ``data`` of ``$.``). A nested table (TOML reads an unquoted
    ``user_property.plan = ...`` as one) stands for the dotted field name
    ``user_property.plan``.

Recording rules (applied to the body)
    * values are read as the body Command AI receives holds them: an infinity is null;
    * a body whose ``userId`` is missing, null or ``""`` is ignored (reason
      ``no userId``); a ``userId`` that is neither a string nor a number is ignored too;
    * each field of ``traits`` (when it is an object) becomes a user property; ``traits``
      present but neither an object nor null makes the event a bad record;
    * each body field ``user_property.<name>`` becomes property ``<name>``;
    * ``user_property_event`` holding a non-empty string creates the boolean property
      named by that string, set to ``true``.

    When two rules give the same property name, the more specific rule wins:
    ``user_property.<name>`` beats ``user_property_event``, which beats ``traits``.
    (An explicit, named field is the user's clearest intent; the whole-traits copy the
    vaguest.)

The body is mapping-kit's copy (`kit`): own `__proto__` keys vanish from it at every
depth, and a body field named ``__proto__`` sets the body's prototype instead of a key
(`resolve` assigns each field to a plain object), so it is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cmdai_cli.errors import DataError
from cmdai_cli.mapping import (
    BAD_USER_ID,
    NO_USER_ID,
    NOT_AN_OBJECT,
    TRAITS_NOT_OBJECT,
    Mapped,
)
from cmdai_cli.mapping.kit import PROTO, ProtoKeys, assign_copy
from cmdai_cli.mapping.paths import MISSING, Key, format_path, lookup, parse_path

__all__ = [
    "RECOMMENDED",
    "WebhookMapping",
    "apply_mapping",
    "map_webhook",
    "parse_mapping",
    "record_properties",
]

MappingTable = dict[str, str]
"""A `[mapping]` table as written in TOML: body field name -> path or literal."""

USER_PROPERTY_PREFIX = "user_property."
USER_PROPERTY_EVENT = "user_property_event"


@dataclass(frozen=True)
class BodyField:
    """One row of a mapping: the body field `name` and where its value comes from."""

    name: str
    source: str
    keys: tuple[Key, ...] | None  # None: `source` is a literal

    @property
    def is_path(self) -> bool:
        return self.keys is not None


@dataclass(frozen=True)
class WebhookMapping:
    """A validated mapping table; `whole_event` when the body is the event itself."""

    table: MappingTable
    fields: tuple[BodyField, ...]

    @property
    def whole_event(self) -> bool:
        return not self.fields

    def to_segment_data(self) -> dict[str, Any]:
        """The Webhooks destination's `data` setting for this mapping (Public API form)."""
        if self.whole_event:
            return {"@path": "$."}
        return {f.name: {"@path": f.source} if f.is_path else f.source for f in self.fields}


def parse_mapping(table: Mapping[str, Any] | None, *, source: str = "<mapping>") -> WebhookMapping:
    """Validate a `[mapping]` table; None or {} means the whole event is the body.

    Raises DataError naming `source` and the offending key.
    """
    if table is None:
        return WebhookMapping({}, ())
    if not isinstance(table, Mapping):
        raise DataError(
            f"the mapping must be a table of field = source, not {_kind(table)}",
            source=source,
            field="mapping",
        )
    fields: list[BodyField] = []
    for name, value in _flatten(table, source).items():
        if not isinstance(name, str) or name == "":
            raise DataError("a body field name must be a non-empty string", source=source)
        if name == USER_PROPERTY_PREFIX:
            raise DataError(
                f"{USER_PROPERTY_PREFIX!r} needs a property name after the dot",
                source=source,
                field=name,
            )
        if not isinstance(value, str):
            raise DataError(
                f"the source must be a string ('$.path' or a literal), not {_kind(value)}",
                source=source,
                field=name,
            )
        keys: tuple[Key, ...] | None = None
        if value.startswith("$."):
            try:
                keys = parse_path(value)
            except ValueError as exc:
                raise DataError(f"bad path {value!r}: {exc}", source=source, field=name) from None
        fields.append(BodyField(name, value, keys))
    return WebhookMapping({f.name: f.source for f in fields}, tuple(fields))


def _flatten(table: Mapping[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    # TOML reads an unquoted `user_property.plan = ...` as a nested table; body field
    # names are flat, so the nesting is read back as the dotted name the user wrote.
    flat: dict[str, Any] = {}
    for name, value in table.items():
        full = f"{prefix}{name}" if isinstance(name, str) else name
        if isinstance(value, Mapping) and isinstance(full, str):
            for inner, inner_value in _flatten(value, source, full + ".").items():
                if inner in flat:
                    raise DataError("body field given twice", source=source, field=inner)
                flat[inner] = inner_value
        else:
            if full in flat:
                raise DataError("body field given twice", source=source, field=full)
            flat[full] = value
    return flat


RECOMMENDED = parse_mapping(None)
"""The seed's recommended set-up: the whole event is sent (use with RECOMMENDED_TRIGGER)."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def apply_mapping(event: Any, mapping: WebhookMapping = RECOMMENDED) -> Any:
    """The webhook body Segment sends for `event` (the event itself for the whole-event map)."""
    marked = type(event) is not dict and isinstance(event, ProtoKeys)
    if not mapping.fields:
        return assign_copy(event) if marked else event
    body: dict[str, Any] = {}
    for field in mapping.fields:
        if field.name == PROTO:
            continue
        if field.keys is None:
            body[field.name] = field.source
        else:
            value = lookup(event, field.keys)
            if value is not MISSING:
                body[field.name] = value
    return assign_copy(body) if marked else body


# ---------------------------------------------------------------- recording rules


def record_properties(
    body: Any, *, explain: bool = False, mapping: WebhookMapping = RECOMMENDED
) -> Mapped:
    """Command AI's recording rules applied to a webhook body.

    The record is `{"userId", "properties", "ignored"}`, plus `"explain"` when asked:
    for each property, the rule that set it, the body field, and the event path it came
    from (`mapping` resolves body fields back to event paths; null for a literal).
    """
    if type(body) is not dict:
        if isinstance(body, ProtoKeys):  # an event given as the whole body
            return record_properties(assign_copy(body), explain=explain, mapping=mapping)
        return None, NOT_AN_OBJECT
    user_id = body.get("userId")
    traits = body.get("traits")
    if traits is not None and type(traits) is not dict:
        if not _crosses_as_null(traits):
            return None, TRAITS_NOT_OBJECT
        traits = None
    if user_id is None or user_id == "":
        return _ignored_webhook(NO_USER_ID), None
    if type(user_id) is not str:
        if type(user_id) not in (int, float):
            return _ignored_webhook(BAD_USER_ID), None
        if _crosses_as_null(user_id):
            return _ignored_webhook(NO_USER_ID), None
    props: dict[str, Any] = dict(traits) if traits else {}
    # One scan in C over all key names is much cheaper than testing each key.
    named = (
        [key for key in body if key.startswith("user_property")]
        if "user_property" in "".join(body)
        else None
    )
    event_name: Any = None
    if named:
        event_name = body.get(USER_PROPERTY_EVENT)
        if type(event_name) is str and event_name:
            props[event_name] = True
        else:
            event_name = None
        for key in named:
            if key.startswith(USER_PROPERTY_PREFIX) and len(key) > len(USER_PROPERTY_PREFIX):
                props[key[len(USER_PROPERTY_PREFIX) :]] = body[key]
    record: dict[str, Any] = {"userId": user_id, "properties": props, "ignored": None}
    if explain:
        record["explain"] = _explain_webhook(body, props, named or [], event_name, mapping)
    return record, None


def _crosses_as_null(value: Any) -> bool:
    # An infinity (JSON.parse's reading of 1e400) is sent as null: JSON.stringify
    # writes it so, and Command AI reads the body it was sent.
    return type(value) is float and math.isinf(value)


def _ignored_webhook(reason: str) -> dict[str, Any]:
    return {"userId": None, "properties": {}, "ignored": reason}


def _event_path(mapping: WebhookMapping, body_field: str, below: tuple[Key, ...] = ()) -> Any:
    if mapping.whole_event:
        return format_path((body_field, *below))
    for field in mapping.fields:
        if field.name == body_field:
            return None if field.keys is None else format_path((*field.keys, *below))
    return None


def _explain_webhook(
    body: dict[str, Any],
    props: dict[str, Any],
    named: list[str],
    event_name: Any,
    mapping: WebhookMapping,
) -> dict[str, Any]:
    # Walk the rules from weakest to strongest so the winner is the last one written.
    why: dict[str, Any] = {}
    traits = body.get("traits")
    if type(traits) is dict:
        for name in traits:
            why[name] = {
                "rule": "traits",
                "field": "traits",
                "path": _event_path(mapping, "traits", (name,)),
            }
    if event_name is not None:
        why[event_name] = {
            "rule": USER_PROPERTY_EVENT,
            "field": USER_PROPERTY_EVENT,
            "path": _event_path(mapping, USER_PROPERTY_EVENT),
        }
    for key in named:
        if key.startswith(USER_PROPERTY_PREFIX) and len(key) > len(USER_PROPERTY_PREFIX):
            why[key[len(USER_PROPERTY_PREFIX) :]] = {
                "rule": "user_property",
                "field": key,
                "path": _event_path(mapping, key),
            }
    return {name: why[name] for name in props}


def map_webhook(
    event: Any, mapping: WebhookMapping = RECOMMENDED, *, explain: bool = False
) -> Mapped:
    """What Command AI's webhook records for `event` sent through `mapping`."""
    if type(event) is not dict and not isinstance(event, ProtoKeys):
        return None, NOT_AN_OBJECT
    return record_properties(apply_mapping(event, mapping), explain=explain, mapping=mapping)
