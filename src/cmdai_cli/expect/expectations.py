"""Expectations: what a collector should have received, from flags or a TOML file.

    [[expect]]
    type = "track"
    event = "Opened"
    user_id = "user-1"
    properties = { trigger = "keyboard" }
    min = 1            # or count = N (exactly), max = N; the default is min = 1

A file that cannot be used is a usage error naming its line, so CI logs point at it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmdai_cli import settings_file
from cmdai_cli.errors import UsageError
from cmdai_cli.event_names import ALL
from cmdai_cli.segment.messages import MESSAGE_TYPES
from cmdai_cli.values import json_problem, parse_property

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

# Expectations are written by hand: a megabyte is thousands of them.
EXPECT_LIMIT = settings_file.MiB
KEYS = ("type", "event", "user_id", "properties", "count", "min", "max")
# A Command AI `properties.type` value stands for its event's name (as send-test --event).
_NAME_OF_TYPE = {kind: name for name, kind in ALL}


@dataclass(frozen=True)
class Expectation:
    """Messages that should be there: what they are, and how many of them."""

    type: str | None = None
    event: str | None = None
    user_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    count: int | None = None
    min: int | None = None
    max: int | None = None
    line: int | None = None

    @property
    def bounds(self) -> tuple[int, int | None]:
        """The lowest and highest count that holds (None: no upper bound)."""
        if self.count is not None:
            return self.count, self.count
        low = self.min if self.min is not None else (0 if self.max is not None else 1)
        return low, self.max

    def holds(self, found: int) -> bool:
        low, high = self.bounds
        return found >= low and (high is None or found <= high)

    def event_names(self) -> tuple[str, ...]:
        """The event names that match: as given, and the catalogue name of a type value."""
        if self.event is None:
            return ()
        other = _NAME_OF_TYPE.get(self.event)
        return (self.event,) if other in (None, self.event) else (self.event, str(other))

    def wanted(self) -> str:
        low, high = self.bounds
        if low == high:
            return f"exactly {low}"
        if high is None:
            return f"at least {low}"
        return f"at most {high}" if low == 0 else f"{low} to {high}"

    def describe(self) -> str:
        """One line naming the messages, e.g. `track "Opened" from user-1 with trigger="x"`."""
        parts = [self.type or ("track" if self.event else "any message")]
        if self.event is not None:
            parts.append(json.dumps(self.event, ensure_ascii=False))
        if self.user_id is not None:
            parts.append(f"from {self.user_id}")
        if self.properties:
            pairs = ", ".join(
                f"{key}={json.dumps(value, ensure_ascii=False)}"
                for key, value in self.properties.items()
            )
            parts.append(f"with {pairs}")
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in (("type", self.type), ("event", self.event), ("userId", self.user_id)):
            if value is not None:
                data[key] = value
        if self.properties:
            data["properties"] = dict(self.properties)
        for key, number in (("count", self.count), ("min", self.min), ("max", self.max)):
            if number is not None:
                data[key] = number
        return data


class BadExpectation(UsageError):
    """An expectation that cannot be used; `key` is the field at fault, when one is,
    and `also` a field it conflicts with."""

    def __init__(self, reason: str, key: str | None = None, also: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key
        self.also = also


def build(fields: Mapping[str, Any], line: int | None = None) -> Expectation:
    """An expectation from its fields (the file's keys), checked (`BadExpectation`)."""
    kind = fields.get("type")
    if kind is not None and kind not in MESSAGE_TYPES:
        raise BadExpectation(f"type {kind!r} is not one of " + ", ".join(MESSAGE_TYPES), "type")
    for key in ("event", "user_id"):
        value = fields.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BadExpectation(f"{key} must be a non-empty string", key)
    if fields.get("event") is not None and kind not in (None, "track"):
        raise BadExpectation(f"event names a track, but type is {kind!r}", "event")
    properties = fields.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise BadExpectation("properties must be a table of names and values", "properties")
    problem = json_problem(dict(properties))
    if problem is not None:
        raise BadExpectation(f"properties: {problem}", "properties")
    numbers: dict[str, int | None] = {}
    for key in ("count", "min", "max"):
        value = fields.get(key)
        if value is not None and (type(value) is not int or value < 0):
            raise BadExpectation(f"{key} must be a whole number, 0 or more", key)
        numbers[key] = value
    if numbers["count"] is not None:
        for key in ("min", "max"):
            if numbers[key] is not None:
                raise BadExpectation("give count, or min and/or max, not both", key, "count")
    low, high = numbers["min"], numbers["max"]
    if low is not None and high is not None and low > high:
        raise BadExpectation(f"min {low} is above max {high}", "min")
    return Expectation(
        type=kind,
        event=fields.get("event"),
        user_id=fields.get("user_id"),
        properties=dict(properties),
        count=numbers["count"],
        min=low,
        max=high,
        line=line,
    )


def gather(file: Path | None, fields: Mapping[str, Any], other_checks: bool) -> list[Expectation]:
    """The expectations to check: the file's, or the one the command's flags describe.

    `fields` are the file's keys, from flags; `properties` a list of `K=V`. With no file
    and no such flag, the expectation is "at least one message", unless `other_checks`.
    """
    given = {key: value for key, value in fields.items() if value not in (None, [], {})}
    if "properties" in given:
        given["properties"] = dict(parse_property(pair) for pair in given["properties"])
    if file is not None:
        if given:
            flags = ", ".join("--" + key.replace("_", "-") for key in given)
            raise UsageError(f"give --file or expectation flags ({flags}), not both")
        return load_file(file)
    if not given and other_checks:
        return []
    try:
        return [build(given)]
    except BadExpectation as exc:
        flag = "--" + exc.key.replace("_", "-") if exc.key else "the flags"
        raise UsageError(f"{flag}: {exc.reason}") from None


def load_file(path: Path) -> list[Expectation]:
    """The `[[expect]]` tables of a TOML file, each checked; errors name the file's line."""
    try:
        text = settings_file.read(
            path,
            what="expectation file",
            limit=EXPECT_LIMIT,
            fail=lambda reason: UsageError(f"{path}: {reason}"),
        ).decode("utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the expectation file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the expectation file is not UTF-8 text") from None
    try:
        document = settings_file.loads_toml(
            text, fail=lambda reason: UsageError(f"{path}: {reason}")
        )
    except tomllib.TOMLDecodeError as exc:
        position = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        reason = str(exc).split(" (at line")[0]
        where = f"{path}:{position.group(1)}" if position else str(path)
        raise UsageError(f"{where}: not valid TOML: {reason}") from None
    lines = text.splitlines()
    for key in document:
        if key != "expect":
            at = _key_line(lines, key, 0, len(lines))
            raise UsageError(f"{_at(path, at)}: unknown key {key!r}; use [[expect]] tables")
    tables = document.get("expect")
    if not isinstance(tables, list) or not tables:
        raise UsageError(f"{path}: no [[expect]] tables")
    starts = [n for n, text_line in enumerate(lines) if _HEADER.match(text_line)]
    found: list[Expectation] = []
    for index, table in enumerate(tables):
        begin = starts[index] if index < len(starts) else None
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        line = begin + 1 if begin is not None else None
        if not isinstance(table, dict):
            raise UsageError(f"{_at(path, line)}: expect must hold tables")
        for key in table:
            if key not in KEYS:
                at = _key_line(lines, key, begin, end) if begin is not None else None
                raise UsageError(
                    f"{_at(path, at or line)}: unknown key {key!r}; use " + ", ".join(KEYS)
                )
        try:
            found.append(build(table, line))
        except BadExpectation as exc:
            # Point at the key's own line when it can be found.
            at = _key_line(lines, exc.key, begin, end) if exc.key and begin is not None else None
            reason = exc.reason
            if exc.also and begin is not None:
                other = _key_line(lines, exc.also, begin, end)
                if other is not None:
                    reason = f"{exc.key} with {exc.also} (line {other}): {reason}"
            raise UsageError(f"{_at(path, at or line)}: {reason}") from None
    return found


_HEADER = re.compile(r"^\s*\[\[\s*expect\s*\]\]")


def _key_line(lines: list[str], key: str, begin: int | None, end: int) -> int | None:
    pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*[=.]")
    for number in range(begin or 0, end):
        if pattern.match(lines[number]):
            return number + 1
    return None


def _at(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)
