"""`cmdai expect`: assert what a collector received, for CI smoke checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import command, complete_events, finish
from cmdai_cli.commands._options import PlanOpt, TimeoutOpt

if TYPE_CHECKING:
    from cmdai_cli.expect.check import CatalogueOutcome, Near
    from cmdai_cli.expect.run import ExpectResult
    from cmdai_cli.expect.sources import Item

DEFAULT_FROM = "http://127.0.0.1:8765"
MARKS = {True: "PASS", False: "FAIL"}
INDENT = " " * 6

HELP = """Assert what a collector received: events, users, properties and counts.

The collector is a running `cmdai listen` (--from URL, default http://127.0.0.1:8765),
asked through its inspection API, or the NDJSON file `listen --out` writes (--from
FILE). One expectation comes from the flags (--type, --event, --user-id, --property
K=V, and --count N, --min N (default 1) or --max N); many come from --file, a TOML
file of [[expect]] tables with the keys type, event, user_id, properties (a table),
count, min and max. --no-flagged also requires that no message was flagged (what
Segment would drop); --catalogue that every Command AI event matches the catalogue's
schema for it; --plan FILE that no message breaks a tracking plan (unplanned event,
required property missing, datatype mismatch, additional properties).

In an --out capture file, Segment's rules are applied again to flag messages; flags
that need the request (a wrong write key, a size in the grey zone) are known only to
the running collector, or in the lines `listen --json` prints. A collector that
dropped messages (listen --keep) cannot prove a --count or --max: those fail.

Each check is printed met or not, with the count found; one not met is followed by
the nearest messages and what differs in each. --within SECONDS looks again until all
holds or the time is up, waiting for a collector or capture file that is not there
yet. Exit 0 when all hold, 1 when any does not, 6 when the collector cannot be
reached, 4 when the capture file is missing or unreadable, 2 for a bad expectation
file (naming its line), 130 when interrupted.
"""


def register(app: typer.Typer) -> None:
    command(app, "expect", help=HELP)(expect)


def expect(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The collector: a `cmdai listen` URL, or a capture FILE (listen --out).",
        ),
    ] = DEFAULT_FROM,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="TOML file of [[expect]] tables, all checked in one run.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--type", help="Message type: track, identify, page, ...", show_default=False),
    ] = None,
    event: Annotated[
        str | None,
        typer.Option(
            "--event",
            help="Track event name (a Command AI properties.type value also matches its name).",
            autocompletion=complete_events,
            show_default=False,
        ),
    ] = None,
    user_id: Annotated[
        str | None, typer.Option("--user-id", help="The userId.", show_default=False)
    ] = None,
    properties: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            help="K=V the properties (traits for identify) must hold; V is read as JSON "
            "when it parses. Repeatable.",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", help="Exactly N such messages.", min=0, show_default=False),
    ] = None,
    min_: Annotated[
        int | None,
        typer.Option("--min", help="At least N such messages (default 1).", min=0),
    ] = None,
    max_: Annotated[
        int | None,
        typer.Option("--max", help="At most N such messages.", min=0, show_default=False),
    ] = None,
    no_flagged: Annotated[
        bool, typer.Option("--no-flagged", help="Also require that no message was flagged.")
    ] = False,
    catalogue: Annotated[
        bool,
        typer.Option(
            "--catalogue",
            help="Also require every Command AI event to match the catalogue's schema.",
        ),
    ] = False,
    within: Annotated[
        float,
        typer.Option(
            "--within", help="Look again until all holds, for up to SECONDS.", min=0, max=3600
        ),
    ] = 0.0,
    timeout: TimeoutOpt = 10.0,
    plan: PlanOpt = None,
) -> None:
    # Imported here: the core loads the plan checker and httpx, about 50 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.expect.run import ExpectRequest, check

    fields = {
        "type": kind,
        "event": event,
        "user_id": user_id,
        "properties": properties or [],
        "count": count,
        "min": min_,
        "max": max_,
    }
    request = ExpectRequest(
        source,
        fields,
        file=file,
        no_flagged=no_flagged,
        catalogue=catalogue,
        within=within,
        timeout=timeout,
        plan=plan,
    )
    result = check(request)
    finish(result, render)
    checks = len(result.checks)
    held = "1 check holds" if checks == 1 else f"All {checks} checks hold"
    output.info(f"{held} ({result.seen})")


def _named(item: Item) -> str:
    """A message as a reader finds it again: when, its type and event, and whose it is."""
    message = item.message
    what = str(message.get("type", "?"))
    if message.get("event") is not None:
        what += " " + json.dumps(message["event"], ensure_ascii=False)
    who = message.get("userId") or message.get("anonymousId") or "-"
    when = item.received_at[11:23]
    return f"{when} {what} from {who}" if when else f"{what} from {who}"


def _near_line(near: Near) -> str:
    return f"{INDENT}nearest: {_named(near.item)}: " + "; ".join(near.differences)


def render(report: ExpectResult) -> None:
    for outcome in report.outcomes:
        expectation = outcome.expectation
        at = f" (line {expectation.line})" if expectation.line is not None else ""
        output.out(
            f"{MARKS[outcome.met]}  {expectation.describe()}{at}: {outcome.found} found, "
            f"expected {expectation.wanted()}"
        )
        if not outcome.met:
            for near in outcome.nearest:
                output.out(_near_line(near))
            if outcome.hint:
                output.out(f"{INDENT}hint: {outcome.hint}")
    if report.flagged is not None:
        flagged = report.flagged
        detail = ", ".join(f"{flag}: {n}" for flag, n in sorted(flagged.by_flag.items()))
        output.out(
            f"{MARKS[flagged.met]}  no flagged messages: {flagged.flagged} flagged"
            + (f" ({detail})" if detail else "")
        )
        for item in flagged.examples:
            output.out(f"{INDENT}{_named(item)}: " + ", ".join(item.flags))
    if report.catalogue is not None:
        _broken(report.catalogue, "catalogue", "Command AI events break its schema")
    if report.plan is not None:
        _broken(report.plan, "plan", "messages break it")


def _broken(outcome: CatalogueOutcome, label: str, what: str) -> None:
    """A schema check (the catalogue's, a plan's): met or not, and up to 5 that break it."""
    output.out(f"{MARKS[outcome.met]}  {label}: {len(outcome.broken)} of {outcome.checked} {what}")
    for item, problems in outcome.broken[:5]:
        output.out(f"{INDENT}{_named(item)}: " + "; ".join(problems))
