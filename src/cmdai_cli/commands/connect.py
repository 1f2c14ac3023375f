"""`cmdai connect`: check a Segment write key on Segment's CDN and store it in the profile."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import command, finish, resolve_settings
from cmdai_cli.commands._options import (
    CdnHostOpt,
    HostOpt,
    RegionOpt,
    TimeoutOpt,
    read_secret,
)
from cmdai_cli.commands._received import render_sent

if TYPE_CHECKING:
    from cmdai_cli.source_key import Connected


def register(app: typer.Typer) -> None:
    command(app, "connect")(connect)


def connect(
    write_key: Annotated[
        str | None,
        typer.Option(
            "--write-key",
            help="The Segment source's write key; '-' reads it from stdin. Default: "
            "$CMDAI_WRITE_KEY, else prompted for (hidden) on a terminal.",
            show_default=False,
        ),
    ] = None,
    region: RegionOpt = None,
    host: HostOpt = None,
    cdn_host: CdnHostOpt = None,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Store the key without asking Segment's CDN whether a source has it.",
        ),
    ] = False,
    timeout: TimeoutOpt = 10.0,
    send_test: Annotated[
        bool,
        typer.Option(
            "--send-test",
            help="Then send a test event and report whether Segment accepted it "
            "(exit 5 refused, 6 unreachable or failing).",
        ),
    ] = False,
) -> None:
    """Check a Segment write key on Segment's CDN and store it in the active profile.

    The CDN serves the settings of the source that has the key (Segment's Tracking API
    answers 200 to any key, so it cannot tell). An unknown key is not stored (exit 5);
    when the CDN cannot be reached the key is stored with a warning. Without --region
    and --host, the region is the one the source sends to. Names the device-mode
    destinations enabled on the source.
    """
    # Imported here: the core loads pydantic, httpx and the Segment library, about 190 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli import source_key

    key = read_secret(write_key, what="write key", env="CMDAI_WRITE_KEY")
    settings = resolve_settings(
        {"region": region, "segment_host": host, "cdn_host": cdn_host}, create=True
    )
    request = source_key.ConnectRequest(
        settings, key, verify=not no_verify, send_test=send_test, timeout=timeout
    )
    connected = source_key.connect(request)
    check = connected.check
    if check is not None and check.status == "unverified":
        output.warn(f"{source_key.describe(check)}; stored it anyway")
    finish(connected, render)


def render(connected: Connected) -> None:
    # Imported here as in `connect` (about 190 ms for --help); the run loaded it already.
    from cmdai_cli.source_key import describe

    learned = " (from the source's settings)" if connected.region_from == "cdn" else ""
    output.out(
        f"Stored write key {connected.write_key} in profile '{connected.profile}' "
        f"({connected.path}); region {connected.region}{learned}, host {connected.segment_host}"
    )
    check = connected.check
    if check is not None and check.status == "verified":
        output.out(describe(check))
    if connected.sent is not None:
        render_sent(connected.sent)
