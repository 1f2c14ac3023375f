"""`cmdai validate`'s core: read the inputs, check every event against a tracking plan,
hand out each violation as found, and count.

Only counters are kept, so memory does not grow with the input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmdai_cli import _speed
from cmdai_cli.errors import ExitCode
from cmdai_cli.events.inputs import expand_inputs
from cmdai_cli.events.reader import read_batches
from cmdai_cli.events.records import DEFAULT_MAX_RECORD_BYTES, BadRecord, ErrorPolicy, OnError
from cmdai_cli.plans.builtin import builtin_plan
from cmdai_cli.plans.check import Validator, Violation, event_label
from cmdai_cli.plans.rules import load_plan


@dataclass(frozen=True)
class ValidateRequest:
    """The inputs to read (`events.inputs` specs; none: stdin), the plan file (None: the
    built-in plan), and what a bad record does."""

    files: Sequence[str] = ()
    plan_file: Path | None = None
    on_error: OnError = "fail"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


@dataclass
class ValidateResult:
    """How many events were checked against which plan, the violations by event and
    kind, and the bad records by reason."""

    events: int = 0
    failed: int = 0
    violations: int = 0
    by_event: Counter[tuple[str, str]] = field(default_factory=Counter)
    plan_name: str = ""
    plan_rules: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FAILURE if self.violations else ExitCode.OK

    @property
    def problem(self) -> str | None:
        # The violations themselves are the output; the exit code says there were some.
        return None

    def add(self, event: str, found: list[Violation]) -> None:
        self.failed += 1
        self.violations += len(found)
        for violation in found:
            self.by_event[(event, violation.kind)] += 1

    def rows(self) -> list[tuple[str, str, int]]:
        """(event, kind, count), most frequent first."""
        ordered = sorted(self.by_event.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(event, kind, count) for (event, kind), count in ordered]

    def as_json(self) -> dict[str, Any]:
        by_event: dict[str, dict[str, int]] = {}
        for event, kind, count in self.rows():
            by_event.setdefault(event, {})[kind] = count
        return {
            "events": self.events,
            "events_with_violations": self.failed,
            "violations": self.violations,
            "by_event": by_event,
        }


Emit = Callable[[int, str, Violation], None]


def validate_events(
    request: ValidateRequest,
    open_output: Callable[[], Emit],
    *,
    report: Callable[[BadRecord], None] | None = None,
    result: ValidateResult | None = None,
) -> ValidateResult:
    """Check every event of the request's inputs against its plan.

    The plan and the inputs are checked first; `open_output()` is then called once, just
    before reading starts, and returns `emit(index, event, violation)`, called for each
    violation as it is found. Bad records follow `on_error` (`skip` hands each to
    `report`). The counts go to `result` (a new one by default) as the run goes, so a
    caller can sum up a run that raised.
    """
    result = result if result is not None else ValidateResult()
    plan = load_plan(request.plan_file) if request.plan_file is not None else builtin_plan()
    validator = Validator(plan)
    inputs = expand_inputs(request.files)
    result.plan_name, result.plan_rules = plan.name, len(plan.rules)
    policy = ErrorPolicy(request.on_error, report=report, reasons=result.errors)
    emit = open_output()
    batches = read_batches(inputs, on_error=policy, max_record_bytes=request.max_record_bytes)
    with _speed.paused_collector():
        validate_stream(batches, validator, emit, result)
    return result


def validate_stream(
    batches: Iterable[list[Any]], validator: Validator, emit: Emit, summary: ValidateResult
) -> ValidateResult:
    """Check every event of `batches` (lists of `events.records.Event`), in order.

    `emit(index, event, violation)` is called for each violation as it is found.
    """
    check = validator.check
    for batch in batches:
        summary.events += len(batch)
        for event in batch:
            found = check(event.value)
            if found:
                label = event_label(event.value)
                summary.add(label, found)
                for violation in found:
                    emit(event.position, label, violation)
    return summary
