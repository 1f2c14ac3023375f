"""A scenario file: TOML read, checked and compiled, each mistake named by file, line, step.

A flow is ordered `[[steps]]`. Each step sends one event of Command AI's catalogue (or
`identify`), and may say:

    id = "shown"                 # a name later steps refer to: ${steps.shown.properties.id}
    event = "Nudge Shown"        # or { choice = ["Nudge Clicked", ...], weights = [...] }
    properties = { ... }         # over the event's common properties (user, session, ...)
    traits = { ... }             # identify only
    delay = "2s"                 # before the step: "500ms", "1.5m", 3, or { min, max }
    repeat = 2                   # or { min = 0, max = 3 }
    chance = 0.4                 # the step happens this often
    when = { step = "outcome", event = "Nudge Clicked" }   # only after that outcome

A mix runs other scenarios, as whole sessions: `mix = { nudge = 3, survey = 1 }` with
`sessions = { between = [1, 4] }` per user. Both may have a `[user]` table (organization
and traits drawn once per user), a `description` and a `duration` (the window users are
spread over by default).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from itertools import accumulate
from pathlib import Path
from typing import Any

from cmdai_cli import catalogue
from cmdai_cli.errors import DataError, UsageError
from cmdai_cli.scenarios.values import (
    Build,
    Mistake,
    Names,
    Node,
    choice_of,
    compile_dict,
    compile_value,
    parse_weights,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

IDENTIFY = "identify"
_STEP_KEYS = ("id", "event", "properties", "traits", "delay", "repeat", "chance", "when")
_TOP_KEYS = ("name", "description", "duration", "user", "steps", "mix", "sessions")
_TOML_POSITION = re.compile(r"\(at line (\d+), column \d+\)")
_STEP_HEADER = re.compile(r"^\s*\[\[\s*steps\s*\]\]")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

# What a user is when a scenario says nothing: drawn once per user.
DEFAULT_USER: dict[str, Any] = {
    "organization": {"choice": ["org_10234", "org_20871", "org_31145"], "weights": [5, 3, 2]},
    "traits": {
        "plan": {"choice": ["free", "growth", "enterprise"], "weights": [5, 3, 1]},
        "role": {"choice": ["admin", "member", "viewer"], "weights": [1, 6, 2]},
        "signup_date": {"choice": ["2024-02-11", "2024-09-30", "2025-03-04", "2025-11-18"]},
    },
}


@dataclass(frozen=True)
class Variant:
    """One event a step may send: its name, Segment type and payload (properties or traits)."""

    name: str
    kind: str  # "track" or "identify"
    payload: Node
    fields: Mapping[str, Node]


@dataclass(frozen=True)
class Step:
    number: int
    line: int
    id: str | None
    variants: tuple[Variant, ...]
    pick: Build | None  # draws the variant's index; None: one variant
    delay: tuple[float, float]
    repeat: tuple[int, int]
    chance: float
    when: tuple[str, frozenset[str]] | None
    # The fields the generator reads for every event, in one tuple: one lookup, not nine.
    plan: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plan = (self.when, self.chance, *self.repeat, *self.delay, self.pick, self.variants)
        object.__setattr__(self, "plan", (*plan, self.id))

    @property
    def label(self) -> str:
        return f"step {self.number} ({' | '.join(v.name for v in self.variants)})"


@dataclass(frozen=True)
class UserSpec:
    organization: Node
    traits: Mapping[str, Node]


@dataclass(frozen=True)
class Scenario:
    """A compiled scenario: a flow (`steps`) or a mix of flows (`mix`)."""

    name: str
    description: str
    source: str
    user: UserSpec | None
    duration: float | None
    steps: tuple[Step, ...] = ()
    mix: tuple[tuple[Scenario, float], ...] = ()
    sessions: tuple[int, int] = (1, 1)
    text: str = field(default="", repr=False)
    widest: int = 1  # options in its longest choice: the check takes each in turn

    @cached_property
    def cumulative(self) -> list[float]:
        """The mix's weights, summed one after another (for a weighted draw)."""
        return list(accumulate(weight for _, weight in self.mix))

    @property
    def is_mix(self) -> bool:
        return bool(self.mix)

    def flows(self) -> tuple[Scenario, ...]:
        return tuple(flow for flow, _ in self.mix) if self.mix else (self,)

    def span(self) -> float:
        """The longest a session of it can last, in seconds (its delays at their most)."""
        if self.mix:
            return max(flow.span() for flow, _ in self.mix)
        return sum(step.delay[1] * max(step.repeat[1], 1) for step in self.steps)


# ---------------------------------------------------------------- finding files


def builtin_dir() -> Any:
    return resources.files("cmdai_cli.scenarios") / "builtin"


def builtin_names() -> list[str]:
    return sorted(
        entry.name[: -len(".toml")]
        for entry in builtin_dir().iterdir()
        if entry.name.endswith(".toml")
    )


def describe_builtins() -> list[tuple[str, str]]:
    """Each built-in scenario's name and description, sorted by name."""
    out = []
    for name in builtin_names():
        text = (builtin_dir() / f"{name}.toml").read_text("utf-8")
        out.append((name, str(tomllib.loads(text).get("description", ""))))
    return out


class Loader:
    """Reads scenarios by name or path, with the --set overrides; `used` collects the
    override paths some step had."""

    def __init__(self, overrides: Mapping[str, Any]) -> None:
        self.overrides = overrides
        self.used: set[str] = set()
        # The users' traits: those of the first scenario loaded with a [user] table (as
        # the generator takes them), for the flows that have none of their own.
        self.traits: frozenset[str] | None = None

    def load(self, spec: str, beside: Path | None) -> Scenario:
        source, text, base = self._read(spec, beside)
        return _Parser(source, text, self, base).scenario()

    def _read(self, spec: str, beside: Path | None) -> tuple[str, str, Path | None]:
        looks_like_path = spec.endswith(".toml") or "/" in spec or "\\" in spec
        if not looks_like_path:
            entry = builtin_dir() / f"{spec}.toml"
            if entry.is_file():
                return f"builtin:{spec}.toml", entry.read_text("utf-8"), None
            raise UsageError(
                f"no built-in scenario {spec!r} (known: {', '.join(builtin_names())}); "
                "a scenario file's name ends in .toml"
            )
        path = Path(spec)
        if beside is not None and not path.is_absolute():
            path = beside / path
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            raise DataError("is a directory, expected a scenario file", source=spec) from None
        except OSError as exc:
            raise DataError(f"cannot read the scenario: {exc.strerror}", source=spec) from None
        try:
            return str(path), data.decode("utf-8"), path.parent
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text (byte {exc.start})", source=spec) from None


# ---------------------------------------------------------------- reading one file


def parse_duration(value: Any, what: str = "duration") -> float:
    """Seconds from "500ms", "2s", "1.5m", "3h", "7d" or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise Mistake(
            f"bad {what} {value!r}: give seconds or a text such as '500ms', '2s', '30m', '8h' "
            "or '7d'"
        )
    if not 0 <= seconds < float("inf"):
        raise Mistake(f"bad {what} {value!r}: it must be 0 or more")
    return seconds


class _Parser:
    def __init__(self, source: str, text: str, loader: Loader, base: Path | None) -> None:
        self.source = source
        self.text = text
        self.loader = loader
        self.base = base
        self.lines = text.splitlines()
        self.headers = [i + 1 for i, line in enumerate(self.lines) if _STEP_HEADER.match(line)]

    # ------------------------------------------------------------ errors

    def fail(self, message: str, line: int | None = None, step: str | None = None) -> DataError:
        return DataError(message, source=self.source, line=line, field=step)

    def key_line(self, key: str, start: int = 1, end: int | None = None) -> int | None:
        """The first line in [start, end) that sets `key` (or opens its table)."""
        pattern = re.compile(
            rf"^\s*(?:{re.escape(key)}\s*[.=]|\[+\s*(?:steps\.)?{re.escape(key)}\s*[\].])"
        )
        stop = end if end is not None else len(self.lines) + 1
        for number in range(start, stop):
            if pattern.match(self.lines[number - 1]):
                return number
        return None

    # ------------------------------------------------------------ the document

    def scenario(self) -> Scenario:
        try:
            document = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            position = _TOML_POSITION.search(message)
            reason = _TOML_POSITION.sub("", message).strip()
            line = int(position.group(1)) if position else None
            raise self.fail(f"invalid TOML: {reason}", line) from None
        for key in document:
            if key not in _TOP_KEYS:
                raise self.fail(
                    f"unknown key {key!r} (a scenario has: {', '.join(_TOP_KEYS)})",
                    self.key_line(key),
                )
        name = document.get("name", Path(self.source.split(":")[-1]).stem)
        description = document.get("description", "")
        if not isinstance(name, str) or not isinstance(description, str):
            raise self.fail("name and description must be text", self.key_line("name"))
        duration = None
        if "duration" in document:
            duration = self.top(lambda: parse_duration(document["duration"]), "duration")
        user = self.user(document.get("user"))
        if user is not None and self.loader.traits is None:
            self.loader.traits = frozenset(user.traits)
        has_steps, has_mix = "steps" in document, "mix" in document
        if has_steps == has_mix:
            raise self.fail("a scenario has either [[steps]] or a mix table, and one of them")
        common: dict[str, Any] = {
            "name": name,
            "description": description,
            "source": self.source,
            "user": user,
            "duration": duration,
            "text": self.text,
            "widest": _widest(document),
        }
        if has_mix:
            mix, sessions = self.mix(document["mix"], document.get("sessions", 1))
            return Scenario(**common, mix=mix, sessions=sessions)
        if "sessions" in document:
            raise self.fail("sessions belongs to a mix", self.key_line("sessions"))
        raw_steps = document["steps"]
        if not isinstance(raw_steps, list) or not raw_steps:
            raise self.fail("steps must be one or more [[steps]] tables", self.key_line("steps"))
        if user is not None:
            traits = frozenset(user.traits)
        else:
            traits = self.loader.traits or frozenset(default_user().traits)
        return Scenario(**common, steps=self.steps(raw_steps, traits))

    def top(self, get: Callable[[], Any], key: str) -> Any:
        try:
            return get()
        except Mistake as exc:
            raise self.fail(exc.message, self.key_line(key)) from None

    def user(self, raw: Any) -> UserSpec | None:
        if raw is None:
            return None
        line = self.key_line("user")
        if not isinstance(raw, dict) or set(raw) - {"organization", "traits"}:
            raise self.fail("[user] has organization and traits, and nothing else", line)
        merged = {**DEFAULT_USER, **raw}
        if not isinstance(merged["traits"], dict):
            raise self.fail("user traits must be a table", line)
        spec: UserSpec = self.top(lambda: compile_user(merged), "user")
        return spec

    def mix(
        self, raw: Any, sessions: Any
    ) -> tuple[tuple[tuple[Scenario, float], ...], tuple[int, int]]:
        line = self.key_line("mix")
        if not isinstance(raw, dict) or not raw:
            raise self.fail("mix must be a table of scenario = weight", line)
        weights = self.top(lambda: parse_weights(list(raw.values()), len(raw)), "mix")
        flows = []
        for name, weight in zip(raw, weights or [], strict=True):
            try:
                flow = self.loader.load(name, self.base)
            except UsageError as exc:
                raise self.fail(exc.message, self.key_line(name, line or 1) or line) from None
            if flow.is_mix:
                raise self.fail(f"{name!r} is a mix itself; a mix takes flows", line)
            if weight > 0:
                flows.append((flow, weight))
        count = self.top(lambda: parse_count(sessions, "sessions"), "sessions")
        return tuple(flows), count

    # ------------------------------------------------------------ steps

    def steps(self, raw_steps: list[Any], traits: frozenset[str]) -> tuple[Step, ...]:
        shapes: dict[str, Mapping[str, Any]] = {}
        variants_by_id: dict[str, frozenset[str]] = {}
        unsure: set[str] = set()
        out = []
        for index, raw in enumerate(raw_steps):
            number = index + 1
            start = self.headers[index] if index < len(self.headers) else 1
            end = self.headers[index + 1] if index + 1 < len(self.headers) else None
            label = f"step {number}"
            names = Names(traits, dict(shapes), frozenset(unsure))
            try:
                step = self.step(raw, number, start, names, variants_by_id)
            except Mistake as exc:
                line = self.key_line(exc.key, start, end) if exc.key else None
                event = raw.get("event") if isinstance(raw, dict) else None
                if isinstance(event, str):
                    label += f" ({event})"
                raise self.fail(exc.message, line or start, label) from None
            out.append(step)
            if step.id is not None:
                first = step.variants[0]
                shapes[step.id] = {
                    "type": first.kind,
                    "event": first.name,
                    "userId": None,
                    "messageId": None,
                    "timestamp": None,
                    "properties" if first.kind == "track" else "traits": first.fields,
                }
                variants_by_id[step.id] = frozenset(v.name for v in step.variants)
                if step.chance < 1 or step.when is not None or step.repeat[0] == 0:
                    unsure.add(step.id)
        return tuple(out)

    def step(
        self,
        raw: Any,
        number: int,
        line: int,
        names: Names,
        outcomes: Mapping[str, frozenset[str]],
    ) -> Step:
        if not isinstance(raw, dict):
            raise Mistake("a step must be a table")
        for key in raw:
            if key not in _STEP_KEYS:
                raise Mistake(f"unknown key {key!r} (a step has: {', '.join(_STEP_KEYS)})", key)
        step_id = raw.get("id")
        if step_id is not None and (not isinstance(step_id, str) or not _ID.match(step_id)):
            raise Mistake(f"bad id {step_id!r}: letters, digits, '_' and '-'", "id")
        if step_id is not None and step_id in names.steps:
            raise Mistake(f"id {step_id!r} is already taken by an earlier step", "id")
        if "event" not in raw:
            raise Mistake("a step needs an event (a catalogue event's name, or identify)")
        event = raw["event"]
        pick: Build | None = None
        if isinstance(event, dict) and set(event) in ({"choice"}, {"choice", "weights"}):
            events = event["choice"]
            if not isinstance(events, list) or not events:
                raise Mistake("the event choice must be a non-empty list", "event")
            weights = _keyed(lambda: parse_weights(event.get("weights"), len(events)), "event")
            pick = choice_of([(True, i) for i in range(len(events))], weights)
        elif isinstance(event, str):
            events = [event]
        else:
            raise Mistake("event must be a name, or { choice = [...], weights = [...] }", "event")
        variants = tuple(self.variant(name, raw, names) for name in events)
        delay = _keyed(lambda: parse_delay(raw.get("delay", 0)), "delay")
        repeat = _keyed(lambda: parse_count(raw.get("repeat", 1), "repeat"), "repeat")
        chance = raw.get("chance", 1.0)
        if isinstance(chance, bool) or not isinstance(chance, int | float) or not 0 < chance <= 1:
            raise Mistake(f"bad chance {chance!r}: a number above 0 and at most 1", "chance")
        when = self.when(raw.get("when"), outcomes)
        return Step(number, line, step_id, variants, pick, delay, repeat, float(chance), when)

    def when(
        self, raw: Any, outcomes: Mapping[str, frozenset[str]]
    ) -> tuple[str, frozenset[str]] | None:
        if raw is None:
            return None
        if not isinstance(raw, dict) or set(raw) != {"step", "event"}:
            raise Mistake('when is { step = "ID", event = "NAME" or [names] }', "when")
        step_id, wanted = raw["step"], raw["event"]
        if step_id not in outcomes:
            raise Mistake(
                f"broken reference: when names no earlier step with id {step_id!r}", "when"
            )
        wanted = [wanted] if isinstance(wanted, str) else wanted
        resolved = set()
        for name in wanted if isinstance(wanted, list) else [wanted]:
            spec = catalogue.lookup(str(name))
            full = spec.name if spec is not None else str(name)
            if full not in outcomes[step_id]:
                raise Mistake(
                    f"broken reference: step {step_id!r} never sends {name!r} "
                    f"(it sends {', '.join(sorted(outcomes[step_id]))})",
                    "when",
                )
            resolved.add(full)
        return step_id, frozenset(resolved)

    def variant(self, name: Any, raw: Mapping[str, Any], names: Names) -> Variant:
        if not isinstance(name, str):
            raise Mistake(f"unknown event {name!r}", "event")
        if name.strip().lower() == IDENTIFY:
            if "properties" in raw:
                raise Mistake("an identify has traits, not properties", "properties")
            base = {
                "formFactor": {"type": "modal"},
                "userAttributes": "${user.traits}",
            }
            payload_key, kind, full = "traits", "identify", IDENTIFY
        else:
            spec = catalogue.lookup(name)
            if spec is None or spec.segment_type != "track":
                known = ", ".join(s.name for s in catalogue.events() if s.segment_type == "track")
                raise Mistake(
                    f"unknown event {name!r}: not in Command AI's catalogue (events: {known}, "
                    "or identify)",
                    "event",
                )
            if "traits" in raw:
                raise Mistake("a track event has properties, not traits", "traits")
            base = _track_base(spec)
            payload_key, kind, full = "properties", "track", spec.name
        given = raw.get(payload_key, {})
        if not isinstance(given, dict):
            raise Mistake(f"{payload_key} must be a table", payload_key)
        merged = {**base, **given}
        self._override(merged, payload_key)
        try:
            fields = {key: compile_value(value, names) for key, value in merged.items()}
        except Mistake as exc:
            raise Mistake(exc.message, payload_key) from None
        return Variant(full, kind, compile_dict(fields), fields)

    def _override(self, payload: dict[str, Any], payload_key: str) -> None:
        for path, value in self.loader.overrides.items():
            head, _, rest = path.partition(".")
            if head != payload_key or not rest:
                continue
            parts = rest.split(".")
            node: Any = payload
            for part in parts[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and parts[-1] in node:
                node[parts[-1]] = {"literal": value}
                self.loader.used.add(path)


def _track_base(spec: catalogue.EventSpec) -> dict[str, Any]:
    """A track event's properties before the step's own: the catalogue's sample, with
    the common properties taken from the user and session."""
    base = dict(spec.sample)
    base.update(
        type=spec.event_type,
        end_user={"slug": "${user.id}", "hmac": {"literal": None}},
        organization="${user.organization}",
        search="",
        session="${session.id}",
        user_type="likely-authenticated",
    )
    return {key: _as_raw(value) for key, value in base.items()}


def _as_raw(value: Any) -> Any:
    # A sample's null or table must not be read as one of the value forms.
    if value is None or isinstance(value, dict | list):
        return {"literal": value} if not _has_refs(value) else value
    return value


def _has_refs(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_refs(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_refs(v) for v in value)
    return False


def _widest(value: Any) -> int:
    """The most options of any choice in a TOML document (1 when it has none)."""
    if isinstance(value, list):
        return max((_widest(item) for item in value), default=1)
    if not isinstance(value, dict):
        return 1
    own = len(value["choice"]) if isinstance(value.get("choice"), list) else 1
    return max([own, *(_widest(item) for item in value.values())])


def _keyed(get: Callable[[], Any], key: str) -> Any:
    try:
        return get()
    except Mistake as exc:
        raise Mistake(exc.message, key) from None


def parse_delay(raw: Any) -> tuple[float, float]:
    """A delay: fixed ("2s", 3) or drawn ({ min = "1s", max = "5s" })."""
    if isinstance(raw, dict):
        if set(raw) != {"min", "max"}:
            raise Mistake('bad delay: a duration, or { min = "1s", max = "5s" }')
        low = parse_duration(raw["min"], "delay")
        high = parse_duration(raw["max"], "delay")
        if low > high:
            raise Mistake(f"bad delay: min {raw['min']!r} is above max {raw['max']!r}")
        return low, high
    seconds = parse_duration(raw, "delay")
    return seconds, seconds


def parse_count(raw: Any, what: str) -> tuple[int, int]:
    """A count: a whole number, or { min, max } / { between = [min, max] }."""
    if isinstance(raw, dict):
        pair = raw.get("between") if set(raw) == {"between"} else None
        if set(raw) == {"min", "max"}:
            pair = [raw["min"], raw["max"]]
        if (
            isinstance(pair, list)
            and len(pair) == 2
            and all(type(x) is int and x >= 0 for x in pair)
            and pair[0] <= pair[1]
        ):
            return pair[0], pair[1]
    elif type(raw) is int and raw >= 0:
        return raw, raw
    raise Mistake(f"bad {what} {raw!r}: a whole number, or {{ min = 1, max = 3 }}")


def compile_user(raw: Mapping[str, Any]) -> UserSpec:
    names = Names(frozenset(), {}, frozenset())
    traits = {key: compile_value(value, names) for key, value in raw["traits"].items()}
    return UserSpec(compile_value(raw["organization"], names), traits)


def default_user() -> UserSpec:
    """The users a scenario without a [user] table gets."""
    return compile_user(DEFAULT_USER)
