"""`cmdai expect`'s run: look at the source until every check holds or the time is up.

Events arrive late in real pipelines, so with `within` the source is looked at again
(every 0.1 s at first, then less often, at most every second) until all holds; a
collector that cannot be reached yet (still starting), or a capture file not written
yet, counts as not holding. The
nearest messages are worked out only once, for what still fails at the end.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmdai_cli import _speed
from cmdai_cli.errors import ExitCode, RemoteUnreachable
from cmdai_cli.expect.check import (
    CatalogueOutcome,
    FlaggedOutcome,
    Looker,
    Outcome,
    all_met,
    check_catalogue,
    check_expectation,
    check_flagged,
    check_plan,
    explain,
)
from cmdai_cli.expect.expectations import Expectation, gather
from cmdai_cli.expect.sources import NoCapture, Source, open_source
from cmdai_cli.plans import Validator, builtin_plan, load_plan
from cmdai_cli.stopping import stop_on_signals

FIRST_PAUSE = 0.1
LONGEST_PAUSE = 1.0


@dataclass(frozen=True)
class ExpectRequest:
    """What `cmdai expect` checks and where: the collector's URL or capture file
    (`source`), the expectations (a `file`, else the flag `fields`, see `gather`), the
    extra checks, and how long to look again."""

    source: str
    fields: Mapping[str, Any]
    file: Path | None = None
    no_flagged: bool = False
    catalogue: bool = False
    within: float = 0.0
    timeout: float = 10.0
    plan: Path | None = None


@dataclass
class ExpectResult:
    """Every check of one run, as it stood at the last look."""

    source: str
    received: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    flagged: FlaggedOutcome | None = None
    catalogue: CatalogueOutcome | None = None
    plan: CatalogueOutcome | None = None
    looks: int = 0
    elapsed: float = 0.0

    @property
    def checks(self) -> list[Outcome | FlaggedOutcome | CatalogueOutcome]:
        extra = [c for c in (self.flagged, self.catalogue, self.plan) if c is not None]
        return [*self.outcomes, *extra]

    @property
    def ok(self) -> bool:
        return all_met(self.checks)

    @property
    def failed(self) -> int:
        return sum(1 for check in self.checks if not check.met)

    @property
    def seen(self) -> str:
        """What was looked at: how many messages, where, and how many times."""
        looks = f"{self.looks} looks" if self.looks != 1 else "1 look"
        messages = f"{self.received} messages" if self.received != 1 else "1 message"
        return f"{messages} at {self.source}, {looks}"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.ok else ExitCode.FAILURE

    @property
    def problem(self) -> str | None:
        if self.ok:
            return None
        return f"{self.failed} of {len(self.checks)} checks failed ({self.seen})"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "from": self.source,
            "received": self.received,
            "expectations": [outcome.as_dict() for outcome in self.outcomes],
            "noFlagged": self.flagged.as_dict() if self.flagged is not None else None,
            "catalogue": self.catalogue.as_dict() if self.catalogue is not None else None,
            "plan": self.plan.as_dict() if self.plan is not None else None,
            "looks": self.looks,
            "elapsed": round(self.elapsed, 3),
        }


def look(
    source: Source,
    expectations: list[Expectation],
    *,
    no_flagged: bool,
    validator: Callable[[], Validator] | None,
    plan: Validator | None = None,
) -> tuple[ExpectResult, Looker]:
    """Every check, once, against what the source holds now."""
    source.refresh()
    looker = Looker(source)
    report = ExpectResult(source.where)
    report.outcomes = [check_expectation(looker, e) for e in expectations]
    if no_flagged:
        report.flagged = check_flagged(looker)
    if validator is not None:
        report.catalogue = check_catalogue(looker, validator)
    if plan is not None:
        report.plan = check_plan(looker, plan)
    report.received = looker.counts().received
    return report, looker


def check(request: ExpectRequest) -> ExpectResult:
    """`cmdai expect`: the expectations (file or flags, see `gather`), checked at the source.

    With `plan` (a tracking plan file), no received message may break it.
    """
    others = request.no_flagged or request.catalogue or request.plan is not None
    expectations = gather(request.file, request.fields, others)
    plan_validator = None
    if request.plan is not None:
        plan_validator = Validator(load_plan(request.plan))
    return run(
        open_source(request.source, timeout=request.timeout),
        expectations,
        no_flagged=request.no_flagged,
        catalogue=request.catalogue,
        within=request.within,
        plan=plan_validator,
    )


def run(
    source: Source,
    expectations: list[Expectation],
    *,
    no_flagged: bool = False,
    catalogue: bool = False,
    within: float = 0.0,
    plan: Validator | None = None,
) -> ExpectResult:
    """Check until all holds or `within` seconds passed; explain what still fails."""
    # Built only when a capture file must be checked here: a collector checks its own,
    # and compiling the catalogue's schemas cost `expect --catalogue` 0.15 s of 0.45.
    validator = functools.cache(lambda: Validator(builtin_plan())) if catalogue else None
    started = time.monotonic()
    deadline = started + within
    # A look decodes up to every kept message (100,000 dicts): with the collector on,
    # its passes over them took longer than the decoding (6.9 s against under 1 s).
    # Ctrl-C and SIGTERM end a look at once, wherever it waits (exit 130).
    with _speed.paused_collector(), stop_on_signals(interrupt=True):
        report, looks = _poll(source, expectations, no_flagged, validator, plan, deadline)
    report.looks = looks
    report.elapsed = time.monotonic() - started
    return report


def _poll(
    source: Source,
    expectations: list[Expectation],
    no_flagged: bool,
    validator: Callable[[], Validator] | None,
    plan: Validator | None,
    deadline: float,
) -> tuple[ExpectResult, int]:
    pause = FIRST_PAUSE
    looks = 0
    try:
        while True:
            looks += 1
            try:
                report, looker = look(
                    source, expectations, no_flagged=no_flagged, validator=validator, plan=plan
                )
            except (RemoteUnreachable, NoCapture):
                if time.monotonic() >= deadline:
                    raise
            else:
                if report.ok or time.monotonic() >= deadline:
                    break
            # The last look is at the deadline, not a pause before it.
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, LONGEST_PAUSE)
        for outcome in report.outcomes:
            if not outcome.met:
                explain(looker, outcome)
    finally:
        source.close()
    return report, looks
