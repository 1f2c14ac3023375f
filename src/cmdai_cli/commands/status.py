"""`cmdai status`: are Command AI's events reaching Segment, and Segment's reaching Command AI?"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli._fast_typer import FastCommand
from cmdai_cli.commands._common import STATE, command, finish, resolve_settings
from cmdai_cli.commands._options import ApiHostOpt, ApiTimeoutOpt, RegionOpt, TokenOpt
from cmdai_cli.errors import ConfigError, RemoteUnreachable

if TYPE_CHECKING:
    from cmdai_cli.workspace.status import StatusRequest, StatusResult

DEFAULT_WATCH = 60.0
# How a watch waits between refreshes (tests replace it).
pause = time.sleep


class StatusCommand(FastCommand):
    """`--watch` alone means every minute. Typer's parser has no option whose value may
    be left out, so a bare `--watch` (last, or followed by another option) gets the
    default written in before parsing."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        given = list(args)
        for i, arg in enumerate(given):
            if arg == "--":
                break
            if arg == "--watch" and (i + 1 == len(given) or given[i + 1].startswith("-")):
                given.insert(i + 1, f"{DEFAULT_WATCH:g}")
                break
        return super().parse_args(ctx, given)


def register(app: typer.Typer) -> None:
    command(app, "status", cls=StatusCommand)(status)


def render(result: StatusResult) -> None:
    # Imported here: the view loads Rich's tables, about 20 ms (python -X importtime)
    # that --help and Tab completion never need.
    from cmdai_cli.commands._status_view import view

    console = output.console()
    # Wrapped to the width (the shared console soft-wraps by default), so 80 columns hold.
    console.print(view(result, console.width), soft_wrap=False)


def status(
    since: Annotated[
        str,
        typer.Option(
            "--since",
            help="How far back to look: a number and a unit (s, m, h, d, w), such as 90m, "
            "24h or 7d.",
        ),
    ] = "24h",
    granularity: Annotated[
        str,
        typer.Option(
            "--granularity",
            help="Bucket size; auto picks the finest that Segment keeps for the window "
            "(minute: 4h within the last 48h; hour: 14d; day: 30d).",
            metavar="[auto|minute|hour|day]",
        ),
    ] = "auto",
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="The source's id, slug or name (default: the profile's source, then the "
            "source holding the profile's write key).",
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch",
            help="Redraw every SECONDS (default 60) until Ctrl-C, which ends with exit 0; "
            "refreshes are spaced to stay within Segment's rate limit. With --json, one "
            "document a line per refresh.",
            metavar="[SECONDS]",
            min=1,
            show_default=False,
        ),
    ] = None,
    max_failure_rate: Annotated[
        float,
        typer.Option(
            "--max-failure-rate",
            help="Share of failed deliveries to the webhook allowed before the check fails "
            "(0 to 1).",
            min=0.0,
            max=1.0,
        ),
    ] = 0.05,
    token: TokenOpt = None,
    api_host: ApiHostOpt = None,
    region: RegionOpt = None,
    timeout: ApiTimeoutOpt = 15.0,
) -> None:
    """Show whether events flow: into the source, to its destinations, through filters.

    From Segment's Public API: the source's event volume per event name (with sparklines
    and a chart of the window), the Command AI and Webhooks destinations on it, the
    webhook's Delivery Overview funnel, and whether a destination filter drops an
    identify. Needs a Public API token (a Team or Business plan). Exit 0 when healthy,
    1 when a check fails (no event in the window, a destination missing or disabled,
    deliveries failing above --max-failure-rate, a filter dropping identify).
    """
    # Imported here: the core loads httpx and the Public API's readings, about 190 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.workspace import status as core

    request = build_request(
        since, granularity, source, max_failure_rate, token, api_host, region, timeout
    )
    if watch is None:
        finish(core.run(request, on_wait=output.warn), render)
        return
    watch_until_stopped(request, watch)


def build_request(
    since: str,
    granularity: str,
    source: str | None,
    max_failure_rate: float,
    token: str | None,
    api_host: str | None,
    region: str | None,
    timeout: float,
) -> StatusRequest:
    """Settings resolved once (flag > env > profile > default), as the core's request."""
    # Imported here: see `status` (about 190 ms).
    from cmdai_cli.workspace.status import StatusRequest
    from cmdai_cli.workspace.window import parse_duration

    resolved = resolve_settings(
        {"public_api_token": token, "api_host": api_host, "region": region, "source": source}
    )
    api_token = resolved.get("public_api_token")
    if not api_token:
        raise ConfigError(
            "no Segment Public API token: give --token, set $CMDAI_PUBLIC_API_TOKEN, or "
            "store public_api_token in the profile"
        )
    return StatusRequest(
        api_host=str(resolved.get("api_host")),
        token=str(api_token),
        since=parse_duration(since),
        granularity=granularity.strip().lower(),
        source=resolved.get("source"),
        write_key=resolved.get("write_key"),
        org_id=resolved.get("org_id"),
        webhook_url=resolved.get("webhook_url"),
        max_failure_rate=max_failure_rate,
        timeout=timeout,
    )


def watch_until_stopped(request: StatusRequest, every: float) -> None:
    """Redraw in place until Ctrl-C (exit 0: stopping is how a watch ends).

    No shared stop handler exists yet, so KeyboardInterrupt is caught here. A refresh
    that cannot reach Segment is said on stderr and the next one tries again.
    """
    # Imported here: see `status` and `render` (about 190 and 20 ms).
    from rich.live import Live

    from cmdai_cli.commands._status_view import view
    from cmdai_cli.workspace import status as core

    console = output.console()
    # Redrawn in place; a view taller than the terminal loses its bottom, so the
    # verdict is drawn first there.
    live = (
        None
        if STATE.json or not console.is_terminal
        else Live(console=console, auto_refresh=False, transient=False)
    )
    said_pace = False
    try:
        if live is not None:
            live.start()
        while True:
            wait = every
            try:
                result = core.run(request, on_wait=output.warn)
            except RemoteUnreachable as exc:
                output.warn(f"{exc.message}; trying again in {every:g} s")
            else:
                wait = result.watch_interval(every)
                if wait > every and not said_pace:
                    output.warn(f"refreshing every {wait:g} s to stay within the rate limit")
                    said_pace = True
                if STATE.json:
                    output.emit_json(result.as_json())
                elif live is not None:
                    live.update(view(result, console.width, verdict_first=True), refresh=True)
                else:
                    render(result)
            pause(wait)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
