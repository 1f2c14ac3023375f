"""`cmdai trigger`: Command AI traffic from scenarios, sent to Segment or written as NDJSON."""

from __future__ import annotations

import sys
from importlib import resources
from typing import TYPE_CHECKING, Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, finish, resolve_settings
from cmdai_cli.commands._options import REGIONS, CdnHostOpt, HostOpt, RegionOpt, TimeoutOpt
from cmdai_cli.commands._replay_progress import replay_progress
from cmdai_cli.errors import UsageError

if TYPE_CHECKING:
    from cmdai_cli.scenarios.run import TriggerResult


def complete_scenarios(incomplete: str) -> list[str]:
    # The names from the package's folder: Tab does not load the scenarios' checker.
    folder = resources.files("cmdai_cli.scenarios") / "builtin"
    names = sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith(".toml"))
    return [name for name in names if name.startswith(incomplete)]


def register(app: typer.Typer) -> None:
    command(app, "trigger")(trigger)


def render(result: TriggerResult) -> None:
    if result.listing:
        width = max(len(name) for name, _ in result.listing)
        for name, description in result.listing:
            output.out(f"{name:<{width}}  {description}")
        return
    if result.dry_run:
        verb = "would send" if result.out is None else "would write"
        where = f" to {result.out}" if result.out else ""
    elif result.out is not None:
        verb, where = "wrote", f" to {'stdout' if result.out == '-' else result.out}"
    else:
        verb, where = "sent", f" to {result.destination}"
    done = result.generated if result.delivery is None else result.sent
    output.info(
        f"trigger: {' '.join(result.scenarios)}: {verb} {done:,} events{where} "
        f"({result.users:,} user{'s' if result.users != 1 else ''}, seed {result.seed}, "
        f"from {result.start}) in {result.elapsed:.2f}s ({result.rate:,.0f} events/s)"
    )
    if done != result.generated and result.by_event:
        output.info(f"  of the {result.generated:,} events made:")
    width = max((len(name) for name in result.by_event), default=0)
    for name, count in result.by_event.items():
        output.info(f"  {name:<{width}}  {count:,}")
    check = result.key_check
    if check is not None and check["status"] != "verified":
        output.warn(f"write key not verified: {check.get('detail', check['status'])}")


def trigger(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(
            help="Built-in scenario names (see --list) or scenario files (.toml), run in order.",
            show_default=False,
            autocompletion=complete_scenarios,
        ),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the built-in scenarios, one line each.")
    ] = False,
    users: Annotated[
        int, typer.Option("--users", help="Users run through the scenarios, each with its own id.")
    ] = 1,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="Window the users' sessions start in: 30m, 8h, 7d (default: the scenario's "
            "with several users, none with one).",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Most events sent per second.", show_default=False),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="When the traffic starts: an ISO-8601 time or a time ago (-7d, -3h) "
            "(default: so that it ends now).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Random seed: the same seed and --start give the same events, messageIds "
            "included (default: a new one, shown in the summary).",
            show_default=False,
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="PATH=VALUE set in every step whose event has PATH "
            "(properties.organization=org_42); VALUE is read as JSON when it parses.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Write the events as NDJSON to this file ('-': stdout) and send nothing.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Make and check the events; send and write nothing."),
    ] = False,
    host: HostOpt = None,
    region: RegionOpt = None,
    cdn_host: CdnHostOpt = None,
    timeout: TimeoutOpt = 15.0,
) -> None:
    """Make realistic Command AI traffic from scenarios and send it to the Segment source.

    A scenario is a TOML file of steps (catalogue events or identify, with properties,
    weighted choices, delays and references to earlier steps); the built-in ones (--list)
    are in the same format. Every scenario is checked against the built-in tracking plan
    and Segment's limits before anything is sent; a mistake names its file, line and step.
    Sending goes through replay's delivery (retries, --rate), once the write key is
    checked on Segment's CDN: a key no source has is refused (exit 5) before anything is
    sent, as Segment would take the events and drop them. The summary counts the events
    by name. Exit 0 when every event was written or delivered; 5 or 6 as replay's.
    """
    # Imported here: the scenarios' checker, generator and replay's delivery, about 200 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.scenarios.run import (
        TriggerRequest,
        parse_duration,
        parse_set,
        parse_start,
    )
    from cmdai_cli.scenarios.run import trigger as run_trigger

    if STATE.json and out == "-":
        raise UsageError("--json and --out - would both write to stdout: give --out a file")
    if region is not None and region not in REGIONS:
        raise UsageError(f"--region {region!r} is not one of {', '.join(REGIONS)}")
    sending = not list_ and out is None and not dry_run
    settings = None
    if sending:
        settings = resolve_settings({"segment_host": host, "region": region, "cdn_host": cdn_host})
    request = TriggerRequest(
        scenarios=tuple(scenarios or ()),
        list_only=list_,
        users=users,
        duration=parse_duration(duration) if duration is not None else None,
        rate=rate,
        start=parse_start(start) if start is not None else None,
        seed=seed,
        overrides=tuple(parse_set(pair) for pair in set_ or ()),
        out=out,
        dry_run=dry_run,
        host=host,
        cdn_host=str(settings.get("cdn_host") or "") if settings else None,
        timeout=timeout,
        settings=settings,
    )
    show = sending and output.is_terminal(sys.stderr) and not STATE.json
    with replay_progress(show, label="trigger") as progress:
        result = run_trigger(request, progress)
    finish(result, render)
