"""`cmdai expect`'s run: look at the source until every check holds or the time is up.

Events arrive late in real pipelines, so with `within` the source is looked at again
(every 0.1 s at first, then less often, at most every second) until all holds; a
collector that cannot be reached yet (still starting), or a capture file not written
yet, counts as not holding. The
nearest messages are worked out only once, for what still fails at the end.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmdai_cli import _speed
from cmdai_cli.errors import RemoteUnreachable
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
from cmdai_cli.stopping import stop_on_signals

if TYPE_CHECKING:
    from cmdai_cli.plans import Validator

FIRST_PAUSE = 0.1
LONGEST_PAUSE = 1.0


@dataclass
class Report:
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

    def as_dict(self) -> dict[str, Any]:
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
    validator: Validator | None,
    plan: Validator | None = None,
) -> tuple[Report, Looker]:
    """Every check, once, against what the source holds now."""
    source.refresh()
    looker = Looker(source)
    report = Report(source.where)
    report.outcomes = [check_expectation(looker, e) for e in expectations]
    if no_flagged:
        report.flagged = check_flagged(looker)
    if validator is not None:
        report.catalogue = check_catalogue(looker, validator)
    if plan is not None:
        report.plan = check_plan(looker, plan)
    report.received = looker.counts().received
    return report, looker


def check(
    source: str,
    *,
    file: Path | None,
    fields: Mapping[str, Any],
    no_flagged: bool,
    catalogue: bool,
    within: float,
    timeout: float,
    plan: Path | None = None,
) -> Report:
    """`cmdai expect`: the expectations (file or flags, see `gather`), checked at `source`.

    With `plan` (a tracking plan file), no received message may break it.
    """
    expectations = gather(file, fields, no_flagged or catalogue or plan is not None)
    plan_validator = None
    if plan is not None:
        from cmdai_cli.plans import Validator, load_plan

        plan_validator = Validator(load_plan(plan))
    return run(
        open_source(source, timeout=timeout),
        expectations,
        no_flagged=no_flagged,
        catalogue=catalogue,
        within=within,
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
) -> Report:
    """Check until all holds or `within` seconds passed; explain what still fails."""
    validator = None
    if catalogue:
        from cmdai_cli.plans import Validator, builtin_plan

        validator = Validator(builtin_plan())
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
    validator: Validator | None,
    plan: Validator | None,
    deadline: float,
) -> tuple[Report, int]:
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
