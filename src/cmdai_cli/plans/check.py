"""Checking Segment messages against a plan: `Validator(plan).check(message)`.

Which rule applies (as Segment Protocols matches them): a track event needs the TRACK
rule with its name, and without one it is an unplanned event; identify and group are
checked against the plan's IDENTIFY or GROUP rule, page and screen against the PAGE or
SCREEN rule keyed by their name, else the one without a key; when the plan has no such
rule they are not checked. COMMON rules apply to every message besides.

Each rule's schema is compiled once with fastjsonschema, which answers "valid or not"
several times faster than jsonschema (benchmarks/validate.py). Most events are valid, so
only an invalid one is looked at again, with jsonschema's validator for the same schema,
which lists every error with its path; each error becomes a `Violation` of one kind.
`format` is not asserted (draft-07 leaves it optional), by either library.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import cmdai_cli.plans.compiler as compiler
from cmdai_cli.errors import ConfigError
from cmdai_cli.plans.rules import Plan, Rule
from cmdai_cli.printable import printable

# Violation kinds, and how a person reads them. The first four are the kinds users know
# from RudderStack's tracking-plan checks and from Segment Protocols; a value outside an
# enum, pattern or range is reported as "value not allowed".
KINDS = {
    "unplanned_event": "unplanned event",
    "required_missing": "required property missing",
    "datatype_mismatch": "datatype mismatch",
    "additional_properties": "additional properties",
    "invalid_value": "value not allowed",
}
MAX_MESSAGE = 200


class Violation(NamedTuple):
    """One way a message breaks the plan: its kind, the JSON pointer, and what is wrong."""

    kind: str
    pointer: str
    message: str
    rule: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pointer": self.pointer,
            "message": self.message,
            "rule": self.rule,
        }


def pointer(path: Any) -> str:
    """The JSON pointer (RFC 6901) of a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def event_label(message: Mapping[str, Any]) -> str:
    """How the summary names a message's event: the track name, else its type (and name)."""
    kind = message.get("type")
    if not isinstance(kind, str):
        return "(no type)"
    if kind == "track":
        name = message.get("event")
        return name if isinstance(name, str) else "track (no name)"
    name = message.get("name")
    return f"{kind} {name}" if kind in ("page", "screen") and isinstance(name, str) else kind


def _refuse_remote(uri: str) -> Any:
    raise ConfigError(f"refers to {uri}: a plan must hold all its schemas (no remote $ref)")


class _Compiled:
    """One rule's schema, compiled once: the fast yes/no check and the detailed one."""

    __slots__ = ("budget", "fast", "label", "rule", "slow")

    def __init__(self, rule: Rule, origin: str, budget: compiler.Budget) -> None:
        # Imported here: jsonschema costs about 40 ms (python -X importtime), which
        # importing `plans` (listen, expect) does not pay until a plan is checked.
        import fastjsonschema
        from jsonschema import Draft7Validator
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        self.rule = rule
        self.label = rule.label
        self.budget = budget
        where = (
            f"{origin}: rule {printable(rule.label)}" if origin else f"rule {printable(rule.label)}"
        )
        compiler.check_schema(rule.schema, where, budget)
        cls = validator_for(rule.schema, default=Draft7Validator)
        try:
            cls.check_schema(rule.schema)
        except SchemaError as exc:
            at = pointer(exc.absolute_path) or "/"
            raise ConfigError(
                f"{where}: not a valid JSON Schema at {at}: {_short(exc.message)}"
            ) from None
        except RecursionError:
            raise ConfigError(f"{where}: the schema is nested too deeply") from None
        self.slow = compiler.safe_validator_class(cls, budget)(rule.schema)
        handlers = {scheme: _refuse_remote for scheme in ("http", "https", "file", "ftp")}
        fast = compiler.fast_schema(rule.schema)
        try:
            self.fast = fastjsonschema.compile(
                fast.schema,
                handlers=handlers,
                use_default=False,  # it would write defaults into the event checked
                use_formats=False,
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise ConfigError(f"{where}: cannot compile its JSON Schema: {exc}") from None
        except re.error as exc:
            # A pattern reached only through a $ref, which Python's `re` refuses.
            raise ConfigError(f"{where}: cannot compile its JSON Schema: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{where}: the schema is nested too deeply") from None
        compiler.use_safe_patterns(self.fast, fast.patterns, budget, where)

    def violations(self, message: Mapping[str, Any]) -> list[Violation]:
        """Every violation jsonschema finds in a message the fast check refused."""
        found: dict[tuple[str, str], Violation] = {}
        for error in self.slow.iter_errors(message):
            for violation in _classify(error, self.label, self.budget):
                found.setdefault((violation.kind, violation.pointer), violation)
        return list(found.values())


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _classify(error: Any, label: str, budget: compiler.Budget) -> Iterator[Violation]:
    path = list(error.absolute_path)
    keyword = error.validator
    instance = error.instance
    if keyword == "required" and isinstance(instance, dict):
        for name in error.validator_value:
            if name not in instance:
                yield Violation(
                    "required_missing",
                    pointer([*path, name]),
                    f"required property '{name}' is missing",
                    label,
                )
        return
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        patterns = [
            compiler.SafePattern(p, budget) for p in error.schema.get("patternProperties", {})
        ]
        for name in instance:
            if name not in known and not any(p.search(name) for p in patterns):
                yield Violation(
                    "additional_properties",
                    pointer([*path, name]),
                    f"property '{name}' is not in the plan",
                    label,
                )
        return
    expected = _expected_types(error)
    if expected is not None:
        yield Violation(
            "datatype_mismatch",
            pointer(path),
            f"expected {' or '.join(expected)}, got {json_type(instance)}",
            label,
        )
        return
    yield Violation("invalid_value", pointer(path), _short(error.message), label)


def _expected_types(error: Any) -> list[str] | None:
    """The types a `type` error (or an anyOf/oneOf of types only) wanted, else None."""
    if error.validator == "type":
        wanted = error.validator_value
        return [wanted] if isinstance(wanted, str) else [str(t) for t in wanted]
    context = error.context
    if (
        error.validator in ("anyOf", "oneOf")
        and context
        and all(sub.validator == "type" and not sub.relative_path for sub in context)
    ):
        types: list[str] = []
        for sub in context:
            types.extend(_expected_types(sub) or [])
        return list(dict.fromkeys(types))
    return None


class Validator:
    """A plan compiled for checking messages; build it once, call `check` per message."""

    def __init__(self, plan: Plan) -> None:
        # With jsonschema's import in _Compiled (fastjsonschema alone is about 2 ms).
        import fastjsonschema

        self.plan = plan
        self._budget = compiler.Budget()
        self._invalid = fastjsonschema.JsonSchemaValueException
        self._track: dict[str, _Compiled] = {}
        self._other: dict[tuple[str, str | None], _Compiled] = {}
        self._common: list[_Compiled] = []
        for rule in plan.rules:
            compiled = _Compiled(rule, plan.origin, self._budget)
            if rule.type == "COMMON":
                self._common.append(compiled)
            elif rule.type == "TRACK" and rule.key is not None:
                self._track[rule.key] = compiled
            else:
                self._other[(rule.type.lower(), rule.key)] = compiled

    def rule_for(self, message: Mapping[str, Any]) -> _Compiled | None:
        kind = message.get("type")
        if kind == "track":
            name = message.get("event")
            return self._track.get(name) if isinstance(name, str) else None
        if not isinstance(kind, str):
            return None
        name = message.get("name")
        if isinstance(name, str) and kind in ("page", "screen"):
            found = self._other.get((kind, name))
            if found is not None:
                return found
        return self._other.get((kind, None))

    def check(self, message: Mapping[str, Any]) -> list[Violation]:
        """Every way `message` (one Segment message) breaks the plan; [] when it keeps it."""
        self._budget.ends = 0.0  # a new message: Budget.start, without the call
        found: list[Violation] = []
        try:
            rule = self.rule_for(message)
            if rule is None:
                unplanned = _unplanned(message)
                if unplanned is not None:
                    found.append(unplanned)
            else:
                try:
                    rule.fast(message)
                except self._invalid:
                    found.extend(rule.violations(message))
            for common in self._common:
                try:
                    common.fast(message)
                except self._invalid:
                    found.extend(common.violations(message))
        except RecursionError:
            # A recursive schema over a deeply nested message: a finding, not a crash.
            found.append(Violation("invalid_value", "", "nested too deeply to check", None))
        return found


def _unplanned(message: Mapping[str, Any]) -> Violation | None:
    kind = message.get("type")
    if not isinstance(kind, str):
        return Violation("unplanned_event", "/type", "the message has no type", None)
    if kind != "track":
        return None
    name = message.get("event")
    if not isinstance(name, str) or not name:
        return Violation("unplanned_event", "/event", "the track event has no name", None)
    return Violation("unplanned_event", "/event", f"track event '{name}' is not in the plan", None)


def violation_flag(violation: Violation) -> str:
    """A violation as a receiver's flag: `plan: <kind>`, with the pointer when there is one.

    Short and free of the values themselves, so that flags count alike (`listen --plan`'s
    summary counts by flag).
    """
    label = f"plan: {KINDS[violation.kind]}"
    return f"{label} at {violation.pointer}" if violation.pointer else label


def plan_flags(validator: Validator) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    """A function giving the flags of one message: what `listen --plan` adds to each."""
    check = validator.check

    def flags(message: Mapping[str, Any]) -> tuple[str, ...]:
        found = check(message)
        return tuple(dict.fromkeys(violation_flag(v) for v in found)) if found else ()

    return flags
