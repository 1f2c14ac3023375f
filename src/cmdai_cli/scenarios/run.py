"""`cmdai trigger`'s one run: load and check the scenarios, then write or send their events.

Before anything is written or sent, every scenario is checked: each step's events, with
every choice at each of its options, must pass the built-in tracking plan (the
catalogue's) and Segment's message rules and 32 KB limit; a step that would break them
is an error naming its file, line and step. Sending hands the events to replay's core
(`replay.EventSource`), so they go through `segment/sender.py` with replay's delivery:
its rate, retries (a 429 slows it down, it loses nothing) and limits, each event once.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from cmdai_cli import outpaths
from cmdai_cli.errors import DataError, ExitCode, RemoteRefused, UsageError
from cmdai_cli.plans.builtin import builtin_plan
from cmdai_cli.plans.check import Validator
from cmdai_cli.scenarios import format as scenario_format
from cmdai_cli.scenarios.format import Scenario
from cmdai_cli.scenarios.generate import Plan, events, rounds_needed, samples, user_spec
from cmdai_cli.scenarios.values import Mistake
from cmdai_cli.segment.cdn import check_write_key
from cmdai_cli.segment.messages import check_message

if TYPE_CHECKING:
    from cmdai_cli.profile import Resolved
    from cmdai_cli.replay.result import Progress, ReplayResult

_RELATIVE = re.compile(r"^-\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# With many users and no window given, they are spread over this long.
DEFAULT_WINDOW = 3600.0


@dataclass(frozen=True)
class TriggerRequest:
    """What `cmdai trigger` was asked, settings resolved. No `out`: send to `host`."""

    scenarios: tuple[str, ...] = ()
    list_only: bool = False
    users: int = 1
    duration: float | None = None
    rate: float | None = None
    start: datetime | None = None
    seed: int | None = None
    overrides: tuple[tuple[str, Any], ...] = ()
    out: str | None = None
    dry_run: bool = False
    host: str | None = None
    cdn_host: str | None = None  # where the write key is checked before sending
    timeout: float = 15.0
    settings: Resolved | None = field(default=None, repr=False)


@dataclass
class TriggerResult:
    """What a trigger run did: the events made (by name), and where they went."""

    scenarios: list[str] = field(default_factory=list)
    listing: list[tuple[str, str]] = field(default_factory=list)
    seed: int = 0
    users: int = 0
    start: str | None = None
    by_event: dict[str, int] = field(default_factory=dict)
    generated: int = 0
    out: str | None = None
    dry_run: bool = False
    elapsed: float = 0.0
    key_check: dict[str, Any] | None = None
    # Sending: replay's result, which the counts below read.
    delivery: ReplayResult | None = field(default=None, repr=False)

    @property
    def destination(self) -> str | None:
        return self.delivery.destination if self.delivery else None

    @property
    def sent(self) -> int:
        return self.delivery.sent if self.delivery else 0

    @property
    def failed(self) -> int:
        return self.delivery.failed if self.delivery else 0

    @property
    def rejected(self) -> int:
        return self.delivery.rejected if self.delivery else 0

    @property
    def pending(self) -> int:
        return self.delivery.pending if self.delivery else 0

    @property
    def interrupted(self) -> bool:
        return self.delivery.interrupted if self.delivery else False

    @property
    def rate(self) -> float:
        """Events a second: made (a file, a dry run) or delivered (sending)."""
        done = self.generated if self.delivery is None else self.sent
        return done / self.elapsed if self.elapsed > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        if self.listing:
            return {"scenarios": [{"name": n, "description": d} for n, d in self.listing]}
        return {
            "scenarios": self.scenarios,
            "seed": self.seed,
            "users": self.users,
            "start": self.start,
            "events": self.generated,
            "byEvent": self.by_event,
            "out": self.out,
            "destination": self.destination,
            "dryRun": self.dry_run,
            "sent": self.sent,
            "failed": self.failed,
            "rejected": self.rejected,
            "pending": self.pending,
            "interrupted": self.interrupted,
            "elapsed": round(self.elapsed, 3),
            "rate": round(self.rate, 1),
            "keyCheck": self.key_check,
            "failedReasons": self.delivery.failed_reasons if self.delivery else {},
            "deadLetter": self.delivery.dead_letter if self.delivery and self.failed else None,
        }

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.delivery is not None and (self.failed or self.rejected or self.pending):
            unreachable = self.delivery.unreachable
            return ExitCode.UNREACHABLE if unreachable == self.failed else ExitCode.REFUSED
        return ExitCode.OK

    @property
    def problem(self) -> str | None:
        if self.exit_code == ExitCode.OK:
            return None
        again = (
            f"run it again with --seed {self.seed} --start {self.start} to make the same "
            "events (Segment drops the messageIds it has already seen)"
        )
        if self.interrupted:
            return f"interrupted: {self.sent} of {self.generated} events sent; {again}"
        parts = []
        if self.failed:
            delivery = self.delivery
            assert delivery is not None
            reasons = sorted(delivery.failed_reasons.items(), key=lambda item: -item[1])
            why = f": {reasons[0][0]}" if reasons else ""
            parts.append(f"{self.failed} failed{why} (in {delivery.dead_letter})")
        parts += [
            f"{n} {what}"
            for n, what in ((self.rejected, "rejected"), (self.pending, "pending"))
            if n
        ]
        return f"{self.generated - self.sent} events not delivered: {'; '.join(parts)}"


# ---------------------------------------------------------------- parsing options


def parse_start(text: str, now: datetime | None = None) -> datetime:
    """`--start`: an ISO-8601 date or time (UTC when no zone), or `-7d`, `-3h`, `-30m`."""
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _RELATIVE_UNITS[match.group(2)])
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--start {text!r} is not an ISO-8601 time (2026-05-01T09:00:00Z) nor a time "
            "ago (-7d, -3h, -30m)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_duration(text: str, flag: str = "--duration") -> float:
    try:
        return scenario_format.parse_duration(text, flag)
    except Mistake as exc:
        raise UsageError(exc.message) from None


def parse_set(pair: str) -> tuple[str, Any]:
    """`--set PATH=VALUE`: VALUE read as JSON when it parses (3, true, [..]), else text."""
    path, sep, raw = pair.partition("=")
    path = path.strip()
    if not sep or not path or path.startswith(".") or path.endswith("."):
        raise UsageError(
            f"--set {pair!r} is not PATH=VALUE (for example properties.organization=org_42)"
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw
    return path, value


# ---------------------------------------------------------------- the run


def list_scenarios() -> TriggerResult:
    return TriggerResult(listing=scenario_format.describe_builtins())


def load_checked(specs: Iterable[str], overrides: Iterable[tuple[str, Any]]) -> list[Scenario]:
    """The scenarios, compiled with the overrides and checked (module docstring)."""
    wanted = dict(overrides)
    loader = scenario_format.Loader(wanted)
    loaded = [loader.load(spec, None) for spec in specs]
    unused = [path for path in wanted if path not in loader.used]
    if unused:
        raise UsageError(
            f"--set {unused[0]}: no step's event has it (paths start with properties. or "
            "traits., for example properties.organization)"
        )
    check(loaded)
    return loaded


def check(scenarios: list[Scenario]) -> None:
    """Every step's events against the built-in plan and Segment's rules (DataError)."""
    validator = Validator(builtin_plan())
    rounds = rounds_needed(scenarios)
    spec = user_spec(scenarios)
    for scenario in scenarios:
        for flow in scenario.flows():
            try:
                made = list(samples(flow, spec, rounds))
            except (KeyError, IndexError, TypeError) as exc:
                raise DataError(
                    f"a reference found nothing: {exc} (the users' traits are those of the "
                    "first scenario named with a [user] table, else the built-in ones)",
                    source=flow.source,
                ) from None
            for step, message in made:
                problem = check_message(message)
                if problem is None:
                    violations = validator.check(message)
                    if violations:
                        v = violations[0]
                        problem = (
                            f"the event would break the built-in tracking plan: {v.message}"
                            + (f" at {v.pointer}" if v.pointer else "")
                        )
                if problem is not None:
                    raise DataError(problem, source=flow.source, line=step.line, field=step.label)


def latest(scenarios: list[Scenario], duration: float) -> float:
    """Seconds from the start to the last event at the latest: a session starting at the
    window's end and lasting its longest; with no window, a user's sessions one after
    another (the generator leaves a second between them)."""
    span = max(s.span() for s in scenarios) + 1
    if duration:
        return duration + span
    return span * sum(s.sessions[1] if s.is_mix else 1 for s in scenarios)


def run_key(request: TriggerRequest, seed: int, scenarios: list[Scenario]) -> str:
    """What the messageIds start with: a hash of everything that decides the events but
    the clock, so that the same run made again has the same ids."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (
        str(seed),
        str(request.users),
        repr(request.duration),
        repr(sorted((k, repr(v)) for k, v in request.overrides)),
        *(s.text for s in scenarios),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return "trg-" + digest.hexdigest()


def trigger(
    request: TriggerRequest, progress: Callable[[Progress], None] | None = None
) -> TriggerResult:
    """Run `cmdai trigger` (module docstring); the one core function its command calls."""
    if request.list_only:
        return list_scenarios()
    if not request.scenarios:
        raise UsageError("name a scenario (see --list) or a scenario file")
    if request.users < 1:
        raise UsageError("--users must be at least 1")
    if request.rate is not None and request.out is not None:
        raise UsageError("--rate paces sending; a file (--out) is written at once")
    scenarios = load_checked(request.scenarios, request.overrides)
    seed = request.seed if request.seed is not None else random.SystemRandom().getrandbits(32)
    duration = request.duration
    if duration is None:
        given = next((s.duration for s in scenarios if s.duration is not None), None)
        duration = (given or DEFAULT_WINDOW) if request.users > 1 else 0.0
    if request.start is not None:
        start = request.start
    else:
        # Ending now: no event is stamped in the future.
        start = datetime.now(timezone.utc) - timedelta(seconds=latest(scenarios, duration))
    start = start.replace(microsecond=start.microsecond // 1000 * 1000)
    start_ms = int(start.timestamp() * 1000)
    plan = Plan(
        tuple(scenarios), request.users, seed, start_ms, duration, run_key(request, seed, scenarios)
    )
    result = TriggerResult(
        scenarios=[s.name for s in scenarios],
        seed=seed,
        users=request.users,
        start=start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        dry_run=request.dry_run,
        out=request.out,
    )
    counts: dict[str, int] = {}
    stream = events(plan, counts)
    began = time.monotonic()
    try:
        if request.dry_run:
            for _ in stream:
                pass
        elif request.out is not None:
            write_ndjson(stream, request.out)
        else:
            _send(request, plan, stream, result, progress)
    finally:
        result.elapsed = time.monotonic() - began
        result.by_event = dict(sorted(counts.items()))
        result.generated = sum(counts.values())
    return result


def _send(
    request: TriggerRequest,
    plan: Plan,
    stream: Iterator[dict[str, Any]],
    result: TriggerResult,
    progress: Callable[[Progress], None] | None,
) -> None:
    # Imported here: replay's run (segment-analytics-python, its workers) adds about
    # 70 ms (python -X importtime) that `trigger --out` does not need.
    from cmdai_cli.replay.options import EventSource, ReplayOptions
    from cmdai_cli.replay.run import replay

    if request.settings is None:
        raise UsageError("sending needs the profile's settings")
    key = request.settings.require("write_key", hint="run `cmdai connect` first")
    if request.cdn_host:
        # Segment's Tracking API takes any write key and drops a wrong one's events later
        # (integration-facts, section 1): ask the CDN first, as send-test does.
        check = check_write_key(key, request.cdn_host, min(request.timeout, 10.0))
        result.key_check = check.as_dict()
        if check.status == "unknown":
            raise RemoteRefused(
                f"{check.detail}: nothing sent (Segment would take the events and drop them)",
                hint="check the write key (`cmdai connect`) or the profile in use",
            )
    with tempfile.TemporaryDirectory(prefix="cmdai-trigger-") as scratch:
        options = ReplayOptions(
            inputs=[],
            to="segment",
            host=request.host,
            rate=request.rate,
            timeout=request.timeout,
            # Each run is new traffic: the checkpoint only serves the run's own delivery.
            checkpoint=Path(scratch) / "checkpoint",
            # With a bar to show, the events are counted first for its ETA: making
            # them is a hundred times faster than sending them.
            source=EventSource(
                f"trigger:{plan.key}",
                stream,
                total=sum(1 for _ in events(plan)) if progress is not None else None,
            ),
        )
        summary = replay(options, request.settings, on_progress=progress)
    result.delivery = summary
    if summary.stopped_by is not None:
        raise summary.stopped_by


# ---------------------------------------------------------------- writing


def write_ndjson(stream: Iterable[dict[str, Any]], out: str, block: int = 4096) -> int:
    """The events as NDJSON to `out` (`-`: stdout). A regular file is written beside and
    renamed into place, so it is whole or absent; a device or FIFO is written through."""
    if out == "-":
        return _write(stream, sys.stdout.buffer, block)
    path = Path(out)
    if outpaths.special_kind(path) is not None:
        with open(path, "wb") as handle:
            return _write(stream, handle, block)
    with contextlib.ExitStack() as stack:
        try:
            replaced = stack.enter_context(outpaths.replacing(path))
        except OSError as exc:
            raise DataError(f"cannot write: {exc.strerror}", source=out) from None
        return _write(stream, replaced, block)


def _write(stream: Iterable[dict[str, Any]], handle: IO[bytes], block: int) -> int:
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    parts: list[bytes] = []
    append = parts.append
    count = 0
    for message in stream:
        append(dumps(message, option=newline))
        if len(parts) >= block:
            handle.write(b"".join(parts))
            count += len(parts)
            parts.clear()
    handle.write(b"".join(parts))
    handle.flush()
    return count + len(parts)
