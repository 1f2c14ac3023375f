"""What Command AI records from Segment events: a pure, documented public API.

No I/O and no third-party imports, so the same rules can run inside a user's own
pipeline (a Spark UDF, a DuckDB Python function) when one machine is not enough.

Two targets:

* **webhook** -- Segment's Webhooks destination builds a body from each event with a
  mapping (its ``data`` field), and Command AI's webhook records user properties from it:
  ``map_webhook(event, mapping)``.
* **destination** -- the Command AI (CommandBar) device-mode destination turns each event
  into one Command AI SDK call: ``map_destination(event, deploy=...)``.

Webhook mapping
    A table from body field name to a source. A source string starting with ``$.`` is a
    path into the event (``$.properties.plan``, ``$.context.traits.email``,
    ``$.items[0].sku``, ``$.traits["first name"]``; ``$.`` alone is the whole event);
    any other string is a literal. A path that finds nothing leaves the field out of the
    body; a path that finds ``null`` keeps it as ``null``. An absent or empty table means
    the whole event is the body (Segment's default ``data`` of ``$.``). A nested table
    (TOML reads an unquoted ``user_property.plan = ...`` as one) stands for the dotted
    field name ``user_property.plan``.

Recording rules (applied to the body)
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

Destination emulation
    * identify -> action ``identifyUser``: with deploy on, ``boot(userId, traits,
      options)`` where options holds ``hmac`` (``$.context.CommandBar.hmac``) and
      ``formFactor`` (``$.context.CommandBar.formFactor``) only when present; with deploy
      off, ``addMetadataBatch(traits, true)``. Absent traits are sent as ``{}``.
    * track -> action ``trackEvent``: ``trackEvent(event, properties or {})``.
    * other types make no call; identify without ``userId`` and track without ``event``
      are ignored; each with its reason.

Every ``map_*`` function returns ``(record, problem)``: ``record`` is the output record
(without its ``index``) and ``problem`` is None, or ``record`` is None and ``problem``
says why the event is a bad record. They never raise on any JSON value.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal, cast

from cmdai_cli.errors import DataError
from cmdai_cli.segment_limits import MAX_MESSAGE_BYTES

__all__ = [
    "RECOMMENDED",
    "RECOMMENDED_TRIGGER",
    "SEGMENT_MAX_EVENT_BYTES",
    "BodyField",
    "Mapper",
    "MappingTable",
    "Tally",
    "Target",
    "WebhookMapping",
    "apply_mapping",
    "format_path",
    "make_mapper",
    "map_destination",
    "map_stream",
    "map_webhook",
    "parse_mapping",
    "parse_path",
    "paused_gc",
    "record_properties",
]

MappingTable = dict[str, str]
"""A `[mapping]` table as written in TOML: body field name -> path or literal."""

Target = Literal["webhook", "destination"]
Result = tuple[dict[str, Any] | None, str | None]
Mapper = Callable[[Any], Result]

SEGMENT_MAX_EVENT_BYTES = MAX_MESSAGE_BYTES
"""Segment refuses a message larger than this (its Tracking API limit)."""

RECOMMENDED_TRIGGER = 'type = "identify"'
"""The trigger of the recommended webhook set-up: send identify events."""

USER_PROPERTY_PREFIX = "user_property."
USER_PROPERTY_EVENT = "user_property_event"

# Reasons are part of the output contract: keep them stable.
NO_USER_ID = "no userId"
BAD_USER_ID = "userId is not a string or number"
NOT_AN_OBJECT = "event is not a JSON object"
TRAITS_NOT_OBJECT = "traits is not an object"
PROPERTIES_NOT_OBJECT = "properties is not an object"
IDENTIFY_NO_USER_ID = "identify without userId"
TRACK_NO_EVENT = "track without event"
NO_TYPE = "event has no type"

_Key = str | int
_MISSING: Any = object()


# ---------------------------------------------------------------- paths

_PATH_TOKEN = re.compile(
    r"""
    \.(?P<name>[^.\[\]"']+)              # .name
    | \[(?P<index>\d+)\]                 # [0]
    | \["(?P<dq>(?:[^"\\]|\\.)*)"\]      # ["any name"]
    | \['(?P<sq>(?:[^'\\]|\\.)*)'\]      # ['any name']
    """,
    re.VERBOSE,
)
_PLAIN_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")
_UNESCAPE = re.compile(r"\\(.)")


def parse_path(path: str) -> tuple[_Key, ...]:
    """The keys of a `$.` path; `$.` alone is the whole event (no keys).

    Raises ValueError (with the reason) when the syntax is wrong.
    """
    if not path.startswith("$."):
        raise ValueError("a path must start with '$.'")
    if path == "$.":
        return ()
    # `$.a` is `$` then `.a`; `$.["a b"]` is also accepted, as Segment's editor writes it.
    rest = path[1:]
    if rest.startswith(".["):
        rest = rest[1:]
    keys: list[_Key] = []
    pos = 0
    while pos < len(rest):
        match = _PATH_TOKEN.match(rest, pos)
        if match is None:
            raise ValueError(f"unexpected {rest[pos : pos + 10]!r} at character {pos + 2}")
        if match.group("name") is not None:
            keys.append(match.group("name"))
        elif match.group("index") is not None:
            keys.append(int(match.group("index")))
        else:
            quoted = match.group("dq") if match.group("dq") is not None else match.group("sq")
            keys.append(_UNESCAPE.sub(r"\1", quoted))
        pos = match.end()
    return tuple(keys)


def format_path(keys: Iterable[_Key]) -> str:
    """The `$.` path text of `keys`, quoting names that plain dots cannot carry."""
    text = "$"
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _PLAIN_NAME.match(key):
            text += "." + key
        else:
            text += '["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    if text == "$":
        return "$."
    # A path must start `$.`; a leading bracket is written `$.[...]`, as Segment does.
    return text if text.startswith("$.") else "$." + text[1:]


def _lookup(event: Any, keys: tuple[_Key, ...]) -> Any:
    value = event
    for key in keys:
        kind = type(value)
        if kind is dict:
            if type(key) is not str:
                return _MISSING
            value = value.get(key, _MISSING)
            if value is _MISSING:
                return _MISSING
        elif kind is list:
            if type(key) is not int or key >= len(value):
                return _MISSING
            value = value[key]
        else:
            return _MISSING
    return value


# ---------------------------------------------------------------- the mapping table


@dataclass(frozen=True)
class BodyField:
    """One row of a mapping: the body field `name` and where its value comes from."""

    name: str
    source: str
    keys: tuple[_Key, ...] | None  # None: `source` is a literal

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
        keys: tuple[_Key, ...] | None = None
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
    if not mapping.fields:
        return event
    body: dict[str, Any] = {}
    for field in mapping.fields:
        if field.keys is None:
            body[field.name] = field.source
        else:
            value = _lookup(event, field.keys)
            if value is not _MISSING:
                body[field.name] = value
    return body


# ---------------------------------------------------------------- recording rules


def record_properties(
    body: Any, *, explain: bool = False, mapping: WebhookMapping = RECOMMENDED
) -> Result:
    """Command AI's recording rules applied to a webhook body.

    The record is `{"userId", "properties", "ignored"}`, plus `"explain"` when asked:
    for each property, the rule that set it, the body field, and the event path it came
    from (`mapping` resolves body fields back to event paths; null for a literal).
    """
    if type(body) is not dict:
        return None, NOT_AN_OBJECT
    user_id = body.get("userId")
    traits = body.get("traits")
    if traits is not None and type(traits) is not dict:
        return None, TRAITS_NOT_OBJECT
    if user_id is None or user_id == "":
        return _ignored_webhook(NO_USER_ID), None
    if type(user_id) is not str and (type(user_id) not in (int, float)):
        return _ignored_webhook(BAD_USER_ID), None
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


def _ignored_webhook(reason: str) -> dict[str, Any]:
    return {"userId": None, "properties": {}, "ignored": reason}


def _event_path(mapping: WebhookMapping, body_field: str, below: tuple[_Key, ...] = ()) -> Any:
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
) -> Result:
    """What Command AI's webhook records for `event` sent through `mapping`."""
    if type(event) is not dict:
        return None, NOT_AN_OBJECT
    return record_properties(apply_mapping(event, mapping), explain=explain, mapping=mapping)


# ---------------------------------------------------------------- destination emulation


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
            sdk = _lookup(event, ("context", "CommandBar"))
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


# ---------------------------------------------------------------- one entry point


def make_mapper(
    target: Target = "webhook",
    mapping: WebhookMapping = RECOMMENDED,
    *,
    deploy: bool = False,
    explain: bool = False,
) -> Mapper:
    """A one-argument function event -> (record, problem) for `target`, built once."""
    if target == "destination":

        def destination(event: Any) -> Result:
            return map_destination(event, deploy=deploy, explain=explain)

        return destination
    if target != "webhook":
        raise ValueError(f"unknown target {target!r}")
    if mapping.whole_event and not explain:
        # The common case, kept to one call per event.
        return record_properties

    def webhook(event: Any) -> Result:
        return map_webhook(event, mapping, explain=explain)

    return webhook


# ---------------------------------------------------------------- a whole stream


@dataclass
class Tally:
    """What a run over a stream came to."""

    recorded: int = 0
    ignored: dict[str, int] = dataclass_field(default_factory=dict)
    errors: int = 0  # events the mapping or the writer could not turn into a record

    @property
    def ignored_total(self) -> int:
        return sum(self.ignored.values())

    @property
    def events(self) -> int:
        return self.recorded + self.ignored_total + self.errors


def map_stream(
    batches: Iterable[Iterable[tuple[Any, ...]]],
    mapper: Mapper,
    write: Callable[[int, dict[str, Any]], None],
    on_problem: Callable[[int, str, int | None, str], None],
    tally: Tally | None = None,
) -> Tally:
    """Map every event of `batches` and `write(index, record)` each record, in order.

    Each item of a batch starts `(position, source, line, event, ...)` (as
    `events.records.Event` does). A bad event goes to `on_problem(position, source, line,
    reason)` instead, which may raise to stop; so may `write`. A record `write` cannot
    serialise (a TypeError, as JSON encoders raise for values nested too deeply) is a
    bad event too. Counts go to `tally` (a new one by default) as the run goes, so they
    are there even when the run is stopped by an exception.
    """
    tally = tally if tally is not None else Tally()
    ignored = tally.ignored
    for batch in batches:
        recorded = 0
        try:
            for item in batch:
                record, problem = mapper(item[3])
                if record is None:
                    tally.errors += 1
                    on_problem(item[0], item[1], item[2], problem or "bad event")
                    continue
                try:
                    write(item[0], record)
                except TypeError as exc:
                    tally.errors += 1
                    on_problem(item[0], item[1], item[2], f"output cannot be written: {exc}")
                    continue
                reason = record["ignored"]
                if reason is None:
                    recorded += 1
                else:
                    ignored[reason] = ignored.get(reason, 0) + 1
        finally:
            tally.recorded += recorded
    return tally


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a read-map-write loop without the cycle collector.

    Parsed events hold no reference cycles, so reference counting frees them all; the
    collector would only rescan the live batch over and over (it more than doubled the
    time per event when measured).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
