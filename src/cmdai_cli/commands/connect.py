"""`cmdai connect`: check a Segment write key on Segment's CDN and store it in the profile."""

from __future__ import annotations

from typing import Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command
from cmdai_cli.commands._options import CdnHostOpt, HostOpt, RegionOpt, TimeoutOpt


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
    from cmdai_cli import profile, source_key
    from cmdai_cli.commands._secrets import read_secret

    key = read_secret(write_key, what="write key", env="CMDAI_WRITE_KEY")
    store = profile.Store()
    name = profile.active_name(STATE.profile, store.load())
    connected = source_key.connect(
        store,
        name,
        key,
        profile_flag=STATE.profile,
        region=region,
        host=host,
        cdn_flag=cdn_host,
        verify=not no_verify,
        timeout=timeout,
    )
    result = connected.as_dict()
    check = connected.check
    if check is not None and check.status == "unverified":
        output.warn(f"{source_key.describe(check)}; stored it anyway")
    region_used, host_used = connected.region, connected.segment_host
    sent = None
    if send_test:
        from cmdai_cli import probe

        message, event = probe.build()
        sent = probe.send_with_profile(
            message, event, profile_name=STATE.profile, host=None, timeout=timeout, check_key=False
        )
        result["send_test"] = sent.summary
    if STATE.json:
        output.emit_json(result)
    else:
        learned = " (from the source's settings)" if connected.region_from == "cdn" else ""
        output.out(
            f"Stored write key {result['write_key']} in profile '{name}' ({store.path}); "
            f"region {region_used}{learned}, host {host_used}"
        )
        if check is not None and check.status == "verified":
            output.out(source_key.describe(check))
        if sent is not None:
            from cmdai_cli.commands._sent import render

            render(sent)
    if sent is not None:
        from cmdai_cli import probe

        problem = probe.failure(sent.summary)
        if problem is not None:
            raise problem
