"""Tracking plans as data: rules in the shape Segment's Public API gives them, and files.

A rule is `{"type": "TRACK"|"IDENTIFY"|"GROUP"|"PAGE"|"SCREEN"|"COMMON", "key": event
name or null, "version": n, "jsonSchema": {...}}`, where the JSON Schema (draft-07)
describes the whole event and its `properties` hold the schemas of "properties",
"traits" and "context" (Segment's Public API, `GET /tracking-plans/{id}/rules`; its
Terraform resource `segment_tracking_plan_rules` shows the same shape).

A plan file is JSON: `{"name": ..., "rules": [...]}` as `cmdai plan pull` writes it, a
bare list of rules, or a Public API answer (`{"data": {"rules": [...]}}`). Everything
wrong with one is a `ConfigError` naming the file and, where there is one, the rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmdai_cli import outpaths, settings_file
from cmdai_cli.errors import ConfigError, DataError
from cmdai_cli.results import Done

RULE_TYPES = ("TRACK", "IDENTIFY", "GROUP", "PAGE", "SCREEN", "COMMON")
# Where each Segment message type keeps what its rule's schema describes.
PAYLOAD_FIELD = {
    "track": "properties",
    "page": "properties",
    "screen": "properties",
    "identify": "traits",
    "group": "traits",
}
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
# Segment's largest plans are a few megabytes of JSON; past this it is not a plan.
PLAN_LIMIT = 32 * settings_file.MiB


@dataclass(frozen=True)
class Rule:
    """One rule: the events it covers (type, and name for TRACK) and their schema."""

    type: str
    key: str | None
    schema: dict[str, Any]
    version: int = 1

    @property
    def label(self) -> str:
        return f"{self.type} {self.key}" if self.key else self.type

    def as_api(self) -> dict[str, Any]:
        """The rule as the Public API writes it."""
        return {
            "type": self.type,
            "key": self.key,
            "version": self.version,
            "jsonSchema": self.schema,
        }


@dataclass(frozen=True)
class Plan(Done):
    """A named list of rules, and where it came from (a file, Segment, or built in)."""

    name: str
    rules: tuple[Rule, ...]
    origin: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def as_file(self) -> dict[str, Any]:
        """What a plan file holds: enough to use the plan offline and to tell its origin."""
        return {
            "name": self.name,
            **self.meta,
            "rules": [rule.as_api() for rule in self.rules],
        }

    # `plan show`'s result: its --json document is the plan as a plan file.
    def as_json(self) -> dict[str, Any]:
        return self.as_file()


def event_schema(payload_field: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A whole-event schema whose `payload_field` ("properties", "traits") is `payload`."""
    return {
        "$schema": DRAFT_07,
        "type": "object",
        "properties": {payload_field: dict(payload)},
        "required": [payload_field],
    }


def parse_rule(raw: Any, *, where: str) -> Rule:
    """One rule from its Public API form; ConfigError says what is wrong and `where`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a rule must be a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind.upper() not in RULE_TYPES:
        raise ConfigError(f"{where}: 'type' must be one of {', '.join(RULE_TYPES)}, not {kind!r}")
    kind = kind.upper()
    key = raw.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError(f"{where}: 'key' must be the event name or null, not {key!r}")
    if kind == "TRACK" and key is None:
        raise ConfigError(f"{where}: a TRACK rule needs 'key', the event name")
    schema = raw.get("jsonSchema", {})
    if schema is None:
        schema = {}
    if not isinstance(schema, Mapping):
        raise ConfigError(f"{where}: 'jsonSchema' must be a JSON object")
    version = raw.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{where}: 'version' must be a whole number, not {version!r}")
    return Rule(kind, key, dict(schema), version)


def parse_plan(data: Any, *, source: str) -> Plan:
    """A plan from a plan file's JSON value (see the module docstring)."""
    meta: dict[str, Any] = {}
    name = Path(source).stem
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]
    if isinstance(data, Mapping):
        if not isinstance(data.get("rules"), list):
            raise ConfigError(f"{source}: a plan needs 'rules', a list of rules")
        if isinstance(data.get("name"), str) and data["name"]:
            name = data["name"]
        meta = {k: v for k, v in data.items() if k not in ("name", "rules")}
        raw_rules: Sequence[Any] = data["rules"]
    elif isinstance(data, list):
        raw_rules = data
    else:
        raise ConfigError(f"{source}: a plan must be a JSON object with 'rules' or a list")
    rules = []
    seen: dict[tuple[str, str | None], int] = {}
    for number, raw in enumerate(raw_rules, 1):
        where = f"{source}: rule {number}"
        if isinstance(raw, Mapping) and isinstance(raw.get("key"), str):
            where += f" ({raw.get('type')} {raw['key']!r})"
        rule = parse_rule(raw, where=where)
        ident = (rule.type, rule.key)
        if ident in seen and rule.type != "COMMON":
            raise ConfigError(f"{where}: the same event as rule {seen[ident]}")
        seen[ident] = number
        rules.append(rule)
    return Plan(name, tuple(rules), origin=source, meta=meta)


def load_plan(path: str | Path) -> Plan:
    """The plan in a JSON file; ConfigError names the file (and the rule) when unusable."""
    source = str(path)
    try:
        raw = settings_file.read(path, what="plan file", limit=PLAN_LIMIT)
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such plan file") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, expected a plan file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the plan file: {exc.strerror}") from None
    try:
        data = settings_file.loads_json(raw, fail=lambda reason: ConfigError(f"{source}: {reason}"))
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the plan file is not UTF-8 text") from None
    except ValueError as exc:
        raise ConfigError(f"{source}: the plan file is not valid JSON ({exc})") from None
    return parse_plan(data, source=source)


def save_plan(plan: Plan, path: str | Path) -> None:
    """Write a plan file, whole or not at all (a failed write leaves the old one)."""
    target = Path(path)
    text = json.dumps(plan.as_file(), indent=2, ensure_ascii=False) + "\n"
    try:
        outpaths.write_whole(target, text.encode("utf-8", "surrogatepass"))
    except OSError as exc:
        raise DataError(f"cannot write the plan file: {exc.strerror}", source=str(target)) from None
