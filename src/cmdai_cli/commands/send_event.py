"""`cmdai send-test`: send one event to the Segment source and say what Segment answered."""

from __future__ import annotations

from typing import Annotated

import typer

from cmdai_cli.commands._common import command, complete_events, finish, resolve_settings
from cmdai_cli.commands._options import CdnHostOpt, HostOpt, TimeoutOpt
from cmdai_cli.commands._received import render_sent
from cmdai_cli.errors import UsageError


def register(app: typer.Typer) -> None:
    command(app, "send-test")(send_test)


def send_test(
    event: Annotated[
        str | None,
        typer.Option(
            "--event",
            help="A Command AI event name or type (opened, 'Nudge Shown', ...) to send with "
            "realistic properties. Default: a test event marked as a test.",
            show_default=False,
            autocompletion=complete_events,
        ),
    ] = None,
    user_id: Annotated[
        str | None, typer.Option("--user-id", help="userId to send.", show_default=False)
    ] = None,
    anonymous_id: Annotated[
        str | None,
        typer.Option(
            "--anonymous-id",
            help="anonymousId to send (default: a generated one).",
            show_default=False,
        ),
    ] = None,
    property_: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            help="Extra property K=V (repeatable); V is read as JSON when it parses.",
            show_default=False,
        ),
    ] = None,
    custom: Annotated[
        bool,
        typer.Option(
            "--custom",
            help="Send an --event that is not in Command AI's catalogue, as a custom track "
            "event (without it, such a name is refused as a likely typo).",
        ),
    ] = False,
    host: HostOpt = None,
    cdn_host: CdnHostOpt = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Send to a receiver started in-process on a free loopback port: "
            "no profile, no network.",
        ),
    ] = False,
    timeout: TimeoutOpt = 15.0,
) -> None:
    """Send a test event to the Segment source and report whether Segment accepted it.

    Segment's Tracking API answers 2xx to any write key, so the key is also looked up
    on Segment's CDN and reported as verified (a source has it) or not. Exit 0 only when
    Segment answered 2xx; 5 when it refused (4xx); 6 when it could not be reached, timed
    out or failed (5xx).
    """
    # Imported here: the probe loads the Segment library and pydantic, about 190 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli import probe

    if local and (host is not None or cdn_host is not None):
        raise UsageError("--local cannot be used with --host or --cdn-host")
    request = probe.ProbeRequest(
        event=event,
        user_id=user_id,
        anonymous_id=anonymous_id,
        properties=probe.parse_properties(property_),
        custom=custom,
        settings=None if local else resolve_settings({"segment_host": host, "cdn_host": cdn_host}),
        timeout=timeout,
    )
    finish(probe.run(request), render_sent)
