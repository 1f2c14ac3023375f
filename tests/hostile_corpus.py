"""A generated corpus of hostile inputs at cmdai's edges, written into a directory.

Plans that loop, backtrack, nest and reach outside; settings files that are devices,
FIFOs or too large; values that would act on a terminal. Each case says what the command
must do with it (its exit code, and words its message must hold), so that the tests in
`test_hostile_edges.py` run the same list through every command that has the edge.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENT = "Hostile"
# Forty "a"s and a "!": exponential for a backtracking engine against `^(a+)+$`.
EVIL_TEXT = "a" * 40 + "!"


@dataclass(frozen=True)
class PlanCase:
    """A plan file's content, and what validating against it must end with."""

    name: str
    text: str
    exit_code: int  # 1: a violation found; 3: the plan refused
    words: tuple[str, ...] = ()


def rule_plan(schema: dict[str, Any], key: str = EVENT) -> str:
    return json.dumps({"rules": [{"type": "TRACK", "key": key, "jsonSchema": schema}]})


def properties_schema(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"properties": {"properties": {"properties": properties, **extra}}}


def nested_text(levels: int, open_: str, close: str, middle: str = "{}") -> str:
    return open_ * levels + middle + close * levels


def plan_cases() -> list[PlanCase]:
    string = {"type": "string"}
    return [
        PlanCase(
            "backtracking pattern",
            rule_plan(properties_schema({"a": {"type": "string", "pattern": "^(a+)+$"}})),
            1,
            ("does not match",),
        ),
        PlanCase(
            "backtracking patternProperties",
            rule_plan(properties_schema({}, patternProperties={"^(a|a)*$": {"type": "integer"}})),
            1,
            ("expected integer",),
        ),
        PlanCase(
            "backtracking while compiling additionalProperties false",
            rule_plan(
                properties_schema(
                    {},
                    patternProperties={"^(a|a)*b$": string},
                    additionalProperties=False,
                    required=["a" * 38 + "!"],
                )
            ),
            1,
            ("not in the plan",),
        ),
        PlanCase(
            "look-around on the time-limited engine",
            rule_plan(properties_schema({"a": {"type": "string", "pattern": "^(x+x+)+y(?=z)"}})),
            1,
            ("does not match",),
        ),
        PlanCase(
            "a $ inside a character class, which fastjsonschema's `re` misreads",
            rule_plan(properties_schema({"a": {"type": "string", "pattern": "^[$]x"}})),
            1,
            ("does not match",),
        ),
        PlanCase("$ref to itself", rule_plan({"$ref": "#"}), 3, ("$ref loop",)),
        PlanCase(
            "$ref loop through definitions",
            rule_plan(
                {
                    "definitions": {
                        "a": {"$ref": "#/definitions/b"},
                        "b": {"allOf": [{"$ref": "#/definitions/a"}]},
                    },
                    "$ref": "#/definitions/a",
                }
            ),
            3,
            ("$ref loop", "/definitions/a", "/definitions/b"),
        ),
        PlanCase(
            "$ref loop through a dependency",
            rule_plan({"dependencies": {"a": {"$ref": "#"}}}),
            3,
            ("$ref loop", "/dependencies/a"),
        ),
        PlanCase(
            "$ref to file://",
            rule_plan({"properties": {"x": {"$ref": "file:///etc/passwd"}}}),
            3,
            ("outside the plan", "no remote $ref"),
        ),
        PlanCase(
            "$ref to ftp://",
            rule_plan({"properties": {"x": {"$ref": "ftp://example.com/s.json"}}}),
            3,
            ("outside the plan",),
        ),
        PlanCase(
            "$ref to a relative file",
            rule_plan({"properties": {"x": {"$ref": "other.json#/a"}}}),
            3,
            ("outside the plan",),
        ),
        PlanCase(
            "$ref to nothing",
            rule_plan({"properties": {"x": {"$ref": "#/definitions/missing"}}}),
            3,
            ("points to nothing",),
        ),
        PlanCase(
            "allOf 2,000 deep",
            '{"rules":[{"type":"TRACK","key":"Hostile","jsonSchema":'
            + nested_text(2000, '{"allOf":[', "]}")
            + "}]}",
            3,
            ("nested too deeply",),
        ),
        PlanCase(
            "allOf 300 deep (under the JSON limit)",
            '{"rules":[{"type":"TRACK","key":"Hostile","jsonSchema":'
            + nested_text(300, '{"allOf":[', "]}")
            + "}]}",
            3,
            ("nested too deeply",),
        ),
        PlanCase("100k-level JSON", nested_text(100_000, "[", "]", ""), 3, ("nested too deeply",)),
        PlanCase(
            "300,000-item enum",
            rule_plan(properties_schema({"a": {"enum": list(range(300_000))}})),
            3,
            ("300,000 values",),
        ),
        PlanCase(
            "a bad pattern",
            rule_plan(properties_schema({"a": {"type": "string", "pattern": "(unclosed"}})),
            3,
            ("not a regular expression",),
        ),
        PlanCase(
            "recursion that goes into the value is fine",
            rule_plan(properties_schema({"child": {"$ref": "#/properties/properties"}})),
            0,
        ),
    ]


def hostile_events() -> str:
    """Events for the plan cases: one that backtracks everywhere, one that is fine."""
    lines = [
        {
            "type": "track",
            "event": EVENT,
            "properties": {"a": EVIL_TEXT, "a" * 38 + "!": "x"},
        },
        {"type": "track", "event": EVENT, "properties": {"child": {"child": {}}}},
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


def make_fifo(directory: Path, name: str = "fifo") -> Path:
    path = directory / name
    os.mkfifo(path)
    return path


# Settings inputs that are not regular files: a path, and the words of the refusal.
NOT_FILES = {
    "/dev/zero": "character device",
    "fifo": "FIFO",
}
