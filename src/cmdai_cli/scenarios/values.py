"""The values a scenario step holds, compiled once into what builds them per event.

A value is a literal (kept and shared by every event), or something drawn per event:
`{ choice = [...], weights = [...] }`, `{ between = [low, high] }`, or a string holding
references, `"${user.id}"` or `"nudge ${steps.shown.properties.id}"`. A string that is
one reference and nothing else keeps the referenced value's type (a nudge's numeric id
stays a number). `{ literal = ... }` keeps a table that would otherwise read as one of
these forms.

References name the user (`user.id`, `user.organization`, `user.traits.<name>`), the
session (`session.id`) or an earlier step (`steps.<id>.<path in its event>`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import accumulate
from typing import Any

# A compiled value: (True, the value) for a literal, (False, fn) for one built per event.
Node = tuple[bool, Any]
Build = Callable[["Context"], Any]

_REF = re.compile(r"\$\{\s*([^{}]*?)\s*\}")
_FORMS = ({"choice"}, {"choice", "weights"}, {"between"}, {"literal"})


class Mistake(Exception):
    """A value that cannot be used; `key` is the step's key it was found under."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


class User:
    """One simulated user: a stable id, an organization and traits."""

    __slots__ = ("id", "organization", "traits")

    def __init__(self, id: str, organization: Any, traits: dict[str, Any]) -> None:
        self.id = id
        self.organization = organization
        self.traits = traits


class Context:
    """What a step's values are built from: the user, the session, the earlier steps'
    events by id, the random draw, and `forced` (the check's index: every choice then
    takes option `forced`, so that a check sees each option)."""

    __slots__ = ("forced", "random", "session", "steps", "user")

    def __init__(
        self, user: User, session: str, random: Callable[[], float], forced: int | None = None
    ) -> None:
        self.user = user
        self.session = session
        self.steps: dict[str, dict[str, Any]] = {}
        self.random = random
        self.forced = forced


@dataclass(frozen=True)
class Names:
    """What references may name: the user's traits, and the steps before this one
    (`sure` are those that always happen, and so may be referred to)."""

    traits: frozenset[str]
    steps: Mapping[str, Mapping[str, Any]]
    unsure: frozenset[str]


def build(node: Node, ctx: Context) -> Any:
    return node[1] if node[0] else node[1](ctx)


def compile_value(raw: Any, names: Names) -> Node:
    """`raw` (as TOML read it) compiled; raises Mistake for what cannot be used."""
    if isinstance(raw, str):
        return _string(raw, names)
    if isinstance(raw, bool | int | float):
        return True, raw
    if isinstance(raw, datetime | date | time):
        raise Mistake(f"{raw} is a TOML date or time: write it as a string in quotes")
    if isinstance(raw, list):
        items = [compile_value(item, names) for item in raw]
        if all(const for const, _ in items):
            return True, [value for _, value in items]
        return False, _list(items)
    if isinstance(raw, dict):
        if set(raw) in _FORMS:
            return _form(raw, names)
        fields = {key: compile_value(value, names) for key, value in raw.items()}
        return compile_dict(fields)
    raise Mistake(f"unsupported value {raw!r}")


def compile_dict(fields: Mapping[str, Node]) -> Node:
    """A table whose literal fields are shared and whose drawn ones are built per event."""
    if all(const for const, _ in fields.values()):
        return True, {key: value for key, (_, value) in fields.items()}
    # Every key in its place, drawn ones as placeholders: a copy then keeps the order
    # when the drawn values are written over them.
    template = {key: value if const else None for key, (const, value) in fields.items()}
    drawn = tuple((key, fn) for key, (const, fn) in fields.items() if not const)
    if len(drawn) == 1:
        [(only_key, only_fn)] = drawn

        def make_one(ctx: Context) -> dict[str, Any]:
            out = template.copy()
            out[only_key] = only_fn(ctx)
            return out

        return False, make_one

    def make(ctx: Context) -> dict[str, Any]:
        out = template.copy()
        for key, fn in drawn:
            out[key] = fn(ctx)
        return out

    return False, make


def _list(items: list[Node]) -> Build:
    def make(ctx: Context) -> list[Any]:
        return [value if const else value(ctx) for const, value in items]

    return make


def _form(raw: dict[str, Any], names: Names) -> Node:
    if "literal" in raw:
        return True, raw["literal"]
    if "between" in raw:
        return _between(raw["between"])
    options = raw["choice"]
    if not isinstance(options, list) or not options:
        raise Mistake("choice must be a non-empty list")
    compiled = [compile_value(option, names) for option in options]
    weights = parse_weights(raw.get("weights"), len(options))
    return False, choice_of(compiled, weights)


def parse_weights(raw: Any, count: int) -> list[float] | None:
    """Weights for `count` options (None: equal), checked: numbers, not negative, not all 0."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != count:
        raise Mistake(f"weights must be a list of {count} numbers, one per choice")
    for weight in raw:
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise Mistake(f"bad weight {weight!r}: weights are numbers, 0 or more")
        if weight != weight or weight == float("inf"):
            raise Mistake(f"bad weight {weight!r}: weights are finite numbers")
    if not any(raw):
        raise Mistake("bad weights: at least one must be above 0")
    return [float(weight) for weight in raw]


def choice_of(options: list[Node], weights: list[float] | None) -> Build:
    """A draw among compiled options (by weight), or option `ctx.forced` in a check."""
    count = len(options)
    cumulative = list(accumulate(weights)) if weights else None
    total = cumulative[-1] if cumulative else float(count)
    # In a check every option is taken, but one of weight 0 is never drawn.
    possible = [i for i in range(count) if weights is None or weights[i] > 0]

    def index(ctx: Context) -> int:
        if ctx.forced is not None:
            return possible[ctx.forced % len(possible)]
        if cumulative is None:
            return int(ctx.random() * count)
        return min(bisect_right(cumulative, ctx.random() * total), count - 1)

    if all(const for const, _ in options):
        # The hot case, one call a draw. The last value twice: random() * total may round
        # up to total itself, which bisects past the end.
        values = [value for _, value in options]
        padded = [*values, values[-1]]
        if cumulative is None:

            def equal(ctx: Context) -> Any:
                if ctx.forced is not None:
                    return values[possible[ctx.forced % len(possible)]]
                return padded[int(ctx.random() * count)]

            return equal

        def weighted(ctx: Context) -> Any:
            if ctx.forced is not None:
                return values[possible[ctx.forced % len(possible)]]
            return padded[bisect_right(cumulative, ctx.random() * total)]

        return weighted
    return lambda ctx: build(options[index(ctx)], ctx)


def _between(raw: Any) -> Node:
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
        or raw[0] > raw[1]
    ):
        raise Mistake("between must be [low, high], two numbers with low <= high")
    low, high = raw
    if isinstance(low, int) and isinstance(high, int):
        span = high - low + 1

        def integer(ctx: Context) -> int:
            if ctx.forced is not None:
                return low if ctx.forced % 2 == 0 else high
            return low + min(int(ctx.random() * span), span - 1)

        return False, integer

    def real(ctx: Context) -> float:
        if ctx.forced is not None:
            return float(low if ctx.forced % 2 == 0 else high)
        return round(float(low + ctx.random() * (high - low)), 3)

    return False, real


# ---------------------------------------------------------------- references


def _string(text: str, names: Names) -> Node:
    if "${" not in text:
        return True, text
    refs = list(_REF.finditer(text))
    leftover = _REF.sub("", text)
    if "${" in leftover:
        raise Mistake(f"broken reference in {text!r}: write ${{user.id}}, ${{steps.ID.path}}")
    getters = [reference(match.group(1), names) for match in refs]
    if len(refs) == 1 and refs[0].span() == (0, len(text)):
        return False, getters[0]
    pieces: list[Any] = []
    last = 0
    for match, getter in zip(refs, getters, strict=True):
        pieces.append(text[last : match.start()])
        pieces.append(getter)
        last = match.end()
    pieces.append(text[last:])

    def interpolate(ctx: Context) -> str:
        return "".join(p if type(p) is str else _text(p(ctx)) for p in pieces)

    return False, interpolate


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def reference(path: str, names: Names) -> Build:
    """The getter of `path` (`user.id`, `session.id`, `steps.ID.a.b`), checked against
    what exists at this point of the scenario; raises Mistake when it is broken."""
    parts = path.split(".")
    root = parts[0]
    if root == "user":
        if parts[1:] == ["id"]:
            return lambda ctx: ctx.user.id
        if parts[1:] == ["traits"]:
            return lambda ctx: ctx.user.traits
        if parts[1:] == ["organization"]:
            return lambda ctx: ctx.user.organization
        if len(parts) >= 3 and parts[1] == "traits":
            name = parts[2]
            if name not in names.traits:
                raise Mistake(
                    f"broken reference ${{{path}}}: the user has no trait {name!r} "
                    f"(traits: {', '.join(sorted(names.traits)) or 'none'})"
                )
            rest = parts[3:]
            return lambda ctx: _walk(ctx.user.traits[name], rest)
        raise Mistake(
            f"broken reference ${{{path}}}: use user.id, user.organization or user.traits.NAME"
        )
    if root == "session":
        if parts[1:] == ["id"]:
            return lambda ctx: ctx.session
        raise Mistake(f"broken reference ${{{path}}}: the session has only session.id")
    if root == "steps" and len(parts) >= 3:
        step_id, rest = parts[1], parts[2:]
        if step_id not in names.steps:
            known = ", ".join(names.steps) or "none"
            raise Mistake(
                f"broken reference ${{{path}}}: no earlier step has id {step_id!r} "
                f"(earlier ids: {known})"
            )
        if step_id in names.unsure:
            raise Mistake(
                f"broken reference ${{{path}}}: step {step_id!r} may not happen "
                "(chance, when or repeat 0), so it cannot be referred to"
            )
        _check_path(names.steps[step_id], rest, path)
        if len(rest) == 2:  # the usual `properties.NAME`, without the loop
            first, second = rest
            return lambda ctx: ctx.steps[step_id][first][second]
        return lambda ctx: _walk(ctx.steps[step_id], rest)
    raise Mistake(f"broken reference ${{{path}}}: it names neither user, session nor steps.ID")


def _check_path(shape: Any, rest: list[str], path: str) -> None:
    """`rest` exists in an earlier step's event shape, as far as the shape is literal."""
    node: Any = shape
    for part in rest:
        if isinstance(node, tuple):  # a compiled node
            const, value = node
            if not const:
                return  # drawn per event: its shape is not known before
            node = value
        if not isinstance(node, Mapping) or part not in node:
            raise Mistake(f"broken reference ${{{path}}}: that step's event has no {part!r}")
        node = node[part]


def _walk(value: Any, rest: list[str]) -> Any:
    for part in rest:
        value = value[part]
    return value
