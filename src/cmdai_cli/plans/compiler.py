"""A plan checked whole before anything is validated against it, and patterns that end.

`check_schema(schema, where)` refuses, with a ConfigError (exit 3) naming the rule:

- a `$ref` that leaves the rule's schema (`file://`, `ftp://`, `http://`, a relative
  file): only `#...` pointers inside the plan are resolved;
- a `$ref` that points nowhere, and a loop of references that applies a schema to the
  same value again without going into it (`{"$ref": "#"}`, two definitions naming each
  other), which no validator can finish;
- a schema nested deeper than `MAX_DEPTH`, an `enum` longer than `MAX_ENUM`, and a rule
  of more than `MAX_NODES` JSON values, which would take seconds and gigabytes to compile.

JSON Schema patterns are ECMA-262 regular expressions. Python's `re` backtracks, and
`^(a+)+$` against forty "a"s and a "!" would take longer than anyone waits (and holds
the GIL, so a receiver stops answering). `SafePattern` matches with RE2, which runs in
linear time, wherever RE2 can compile the pattern; what it cannot (back-references,
look-around) runs on the `regex` package with a time limit per match, and a `Budget`
bounds the time all such matches of one message may take together. A match that runs
out of time counts as no match, so the value is reported as breaking the pattern.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote

from cmdai_cli.errors import ConfigError

MAX_DEPTH = 64
MAX_ENUM = 10_000
MAX_NODES = 100_000
# The time one match on the backtracking engine may take, and all of one message's.
MATCH_SECONDS = 0.05
MESSAGE_SECONDS = 0.25

# Keywords whose schema applies to the same value as the schema holding them.
_SAME_VALUE_ONE = ("not", "if", "then", "else")
_SAME_VALUE_MANY = ("allOf", "anyOf", "oneOf")
_ENGINES: list[Any] = []


def _engines() -> tuple[Any, Any, Any]:
    """re2, its options, and regex, imported on the first pattern: together they take
    26 ms (python -X importtime), which a plan without patterns does not pay."""
    if not _ENGINES:
        import re2  # type: ignore[import-untyped]
        import regex  # type: ignore[import-untyped]

        options = re2.Options()
        options.log_errors = False  # a pattern RE2 refuses is not an error: regex takes it
        _ENGINES.extend((re2, options, regex))
    return _ENGINES[0], _ENGINES[1], _ENGINES[2]


class Budget:
    """How much backtracking time is left for the message being checked.

    `start()` is called for every message, so it only marks a new one (`ends` 0); the
    clock is read when the first match on the backtracking engine asks `left()`.
    """

    __slots__ = ("ends",)

    def __init__(self) -> None:
        self.ends = 0.0

    def start(self) -> None:
        self.ends = 0.0

    def left(self) -> float:
        now = time.monotonic()
        if not self.ends:
            self.ends = now + MESSAGE_SECONDS
        return self.ends - now


class SafePattern:
    """An ECMA-262 pattern with `search`/`match` that always end (see the module doc)."""

    __slots__ = ("_budget", "_linear", "_slow", "pattern")

    def __init__(self, pattern: str, budget: Budget) -> None:
        self.pattern = pattern
        self._budget = budget
        self._linear: Any = None
        self._slow: Any = None
        re2, options, regex = _engines()
        try:
            self._linear = re2.compile(pattern, options)
        except re2.error:
            self._slow = regex.compile(_text_end(pattern))

    def search(self, text: str) -> bool:
        if self._linear is not None:
            return self._linear.search(text) is not None
        return self._slow_match(self._slow.search, text)

    def match(self, text: str) -> bool:
        if self._linear is not None:
            return self._linear.match(text) is not None
        return self._slow_match(self._slow.match, text)

    def _slow_match(self, method: Callable[..., Any], text: str) -> bool:
        left = min(MATCH_SECONDS, self._budget.left())
        if left <= 0:
            return False
        try:
            return method(text, timeout=left) is not None
        except TimeoutError:
            return False


def _text_end(pattern: str) -> str:
    """`pattern` with each `$` outside a character class made `\\Z`: in ECMA-262 `$`
    is the end of the text, in Python's engines also the place before a last newline."""
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = "\\Z"
        out.append(char)
        index += 1
    return "".join(out)


def compile_pattern(pattern: str, budget: Budget, where: str) -> SafePattern:
    regex = _engines()[2]
    try:
        return SafePattern(pattern, budget)
    except (regex.error, TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(
            f"{where}: the pattern {pattern!r} is not a regular expression ({exc})"
        ) from None


def use_safe_patterns(
    validate: Callable[..., Any], patterns: Mapping[str, str], budget: Budget, where: str
) -> None:
    """Make a fastjsonschema validator match its patterns with `SafePattern`.

    fastjsonschema compiles `pattern` and `patternProperties` with Python's `re` into
    the `REGEX_PATTERNS` table of the validator's globals, keyed by the pattern text it
    was given: the tokens of `fast_schema` (`patterns` maps each to the real pattern),
    or a pattern itself where a `$ref` reached a part the tokens did not (formats are
    off, so nothing else is there). Each entry becomes a `SafePattern`; fastjsonschema's
    code calls `.search` and `.match` and tests the answer for truth, which a bool
    answers as a match object would.
    """
    table = getattr(validate, "__globals__", {}).get("REGEX_PATTERNS")
    if not table:
        return
    for key in list(table):
        table[key] = compile_pattern(patterns.get(key, key), budget, where)


def safe_validator_class(cls: Any, budget: Budget) -> Any:
    """jsonschema's validator class `cls` whose keywords that match patterns (`pattern`,
    `patternProperties`, and `additionalProperties`, which asks the latter) use
    `SafePattern`."""
    # Imported here: jsonschema costs about 40 ms (python -X importtime), paid only by
    # the plan's checker (plans/check.py imports it the same way).
    from jsonschema import validators
    from jsonschema.exceptions import ValidationError

    cache: dict[str, SafePattern] = {}

    def safe(pattern: str) -> SafePattern:
        found = cache.get(pattern)
        if found is None:
            found = cache[pattern] = SafePattern(pattern, budget)
        return found

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not safe(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(
        validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            matcher = safe(patrn)
            for name, value in instance.items():
                if matcher.search(name):
                    yield from validator.descend(value, subschema, path=name, schema_path=patrn)

    def additional_properties(
        validator: Any, extra: Any, instance: Any, schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        known = schema.get("properties", {})
        patterns = [safe(p) for p in schema.get("patternProperties", {})]
        extras = [
            name
            for name in instance
            if name not in known and not any(p.search(name) for p in patterns)
        ]
        if validator.is_type(extra, "object"):
            for name in extras:
                yield from validator.descend(instance[name], extra, path=name)
        elif extra is False and extras:
            names = ", ".join(repr(name) for name in extras)
            yield ValidationError(f"Additional properties are not allowed ({names} unexpected)")

    return validators.extend(
        cls,
        {
            "pattern": pattern,
            "patternProperties": pattern_properties,
            "additionalProperties": additional_properties,
        },
    )


# Draft-07 keywords whose value is a schema, a list of schemas, or a map of them.
_ONE_SCHEMA = (
    "additionalProperties",
    "additionalItems",
    "items",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "items")
_SCHEMA_MAPS = ("properties", "definitions", "dependencies")


class FastSchema(NamedTuple):
    """A schema as fastjsonschema is given it, and the patterns its tokens stand for."""

    schema: Any
    patterns: dict[str, str]


def fast_schema(schema: Any) -> FastSchema:
    """The schema as fastjsonschema is given it: the same meaning, no `re` on a pattern.

    Each pattern (and `patternProperties` key) becomes a plain token, which is what
    fastjsonschema compiles with `re` (no user pattern then meets `re`: no backtracking
    while compiling, no ECMA-262 pattern `re` misreads); `use_safe_patterns` puts the
    real pattern back behind each token. With `additionalProperties: false`,
    fastjsonschema checks the required names against the patterns while compiling;
    `{"not": {}}` means the same (no other property is allowed) and skips that.
    """
    patterns: dict[str, str] = {}

    def token(pattern: str) -> str:
        name = f"cmdai pattern {len(patterns)}"
        patterns[name] = pattern
        return name

    def copy(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                out[key] = token(value)
            elif key == "patternProperties" and isinstance(value, dict):
                out[key] = {token(name): copy(item) for name, item in value.items()}
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: copy(item) for name, item in value.items()}
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [copy(item) for item in value]
            elif key in _ONE_SCHEMA:
                out[key] = copy(value)
            else:
                out[key] = value  # enum, const, default...: values, not schemas
        if out.get("additionalProperties") is False and out.get("patternProperties"):
            out["additionalProperties"] = {"not": {}}
        return out

    return FastSchema(copy(schema), patterns)


def check_schema(schema: Mapping[str, Any], where: str, budget: Budget) -> None:
    """Refuse what no validator can finish or afford (see the module doc)."""
    nodes = _walk(schema, where, budget)
    _refuse_loops(schema, nodes, where)


def _walk(schema: Any, where: str, budget: Budget) -> dict[str, Any]:
    """Every schema object of `schema` by JSON pointer; size, depth, refs and patterns."""
    schemas: dict[str, Any] = {}
    stack: list[tuple[Any, str, int]] = [(schema, "", 0)]
    count = 0
    while stack:
        value, at, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"{where}: the schema is too large (over {MAX_NODES:,} values)")
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{where}: the schema is nested too deeply (over {MAX_DEPTH} levels) at {at}"
            )
        if isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{at}/{index}", depth + 1))
            continue
        if not isinstance(value, dict):
            continue
        schemas[at] = value
        ref = value.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise ConfigError(
                f"{where}: $ref {ref!r} at {at or '/'} points outside the plan: a plan "
                "must hold all its schemas (no remote $ref; only '#...' is resolved)"
            )
        enum = value.get("enum")
        if isinstance(enum, list) and len(enum) > MAX_ENUM:
            raise ConfigError(
                f"{where}: the enum at {at or '/'} has {len(enum):,} values "
                f"(at most {MAX_ENUM:,} are allowed)"
            )
        patrn = value.get("pattern")
        if isinstance(patrn, str):
            compile_pattern(patrn, budget, where)
        props = value.get("patternProperties")
        if isinstance(props, dict):
            for key in props:
                compile_pattern(key, budget, where)
        for key, item in value.items():
            if key in ("enum", "const", "default", "examples"):
                continue  # values, not schemas: counted, never walked into
            name = key.replace("~", "~0").replace("/", "~1")
            stack.append((item, f"{at}/{name}", depth + 1))
    return schemas


def _target(ref: str, schemas: Mapping[str, Any], where: str, at: str) -> str:
    target = unquote(ref[1:])
    if target in ("", "/"):
        return ""
    if target not in schemas:
        raise ConfigError(f"{where}: $ref {ref!r} at {at or '/'} points to nothing in the plan")
    return target


def _refuse_loops(schema: Any, schemas: Mapping[str, Any], where: str) -> None:
    """A cycle of schemas applied to one value (through $ref, allOf, not, ...) is refused."""
    edges: dict[str, list[str]] = {}
    for at, node in schemas.items():
        out: list[str] = []
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.append(_target(ref, schemas, where, at))
        for key in _SAME_VALUE_ONE:
            if isinstance(node.get(key), dict):
                out.append(f"{at}/{key}")
        dependencies = node.get("dependencies")
        if isinstance(dependencies, dict):
            # The schema form of a dependency applies to the object itself.
            out.extend(
                f"{at}/dependencies/{name.replace('~', '~0').replace('/', '~1')}"
                for name, item in dependencies.items()
                if isinstance(item, dict)
            )
        for key in _SAME_VALUE_MANY:
            items = node.get(key)
            if isinstance(items, list):
                out.extend(
                    f"{at}/{key}/{i}" for i, item in enumerate(items) if isinstance(item, dict)
                )
        edges[at] = out
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        path = [start]
        state[start] = 1
        iters = [iter(edges[start])]
        while iters:
            following = next(iters[-1], None)
            if following is None:
                state[path.pop()] = 2
                iters.pop()
                continue
            seen = state.get(following)
            if seen == 1:
                loop = [*path[path.index(following) :], following]
                shown = " -> ".join(p or "#" for p in loop)
                raise ConfigError(f"{where}: $ref loop that never ends: {shown}")
            if seen is None and following in edges:
                state[following] = 1
                path.append(following)
                iters.append(iter(edges[following]))
