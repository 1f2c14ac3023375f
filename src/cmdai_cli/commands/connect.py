"""`cmdai connect`: store a Segment write key in the active profile."""

from __future__ import annotations

from typing import Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command
from cmdai_cli.commands._options import HostOpt, RegionOpt


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
    send_test: Annotated[
        bool,
        typer.Option(
            "--send-test",
            help="Then send a test event and report whether Segment accepted it "
            "(exit 5 refused, 6 unreachable or failing).",
        ),
    ] = False,
) -> None:
    """Validate a Segment write key and store it in the active profile."""
    from cmdai_cli import profile, redact
    from cmdai_cli.commands._secrets import read_secret

    key = read_secret(write_key, what="write key", env="CMDAI_WRITE_KEY")
    store = profile.Store()
    name = profile.active_name(STATE.profile, store.load())
    stored = profile.connect(store, name, key, region=region, host=host)
    region_used = stored.region or profile.DEFAULTS["region"]
    host_used = stored.segment_host or profile.REGION_HOSTS[region_used]
    result = {
        "profile": name,
        "path": str(store.path),
        "write_key": redact.mask(stored.write_key),
        "region": region_used,
        "segment_host": host_used,
    }
    sent = None
    if send_test:
        from cmdai_cli import test_event

        message, event = test_event.build()
        sent = test_event.send_with_profile(
            message, event, profile_name=STATE.profile, host=None, timeout=15.0
        )
        result["send_test"] = sent.summary
    if STATE.json:
        output.emit_json(result)
    else:
        output.out(
            f"Stored write key {result['write_key']} in profile '{name}' ({store.path}); "
            f"region {region_used}, host {host_used}"
        )
        if sent is not None:
            from cmdai_cli.commands._sent import render

            render(sent)
    if sent is not None:
        from cmdai_cli import test_event

        problem = test_event.failure(sent.summary)
        if problem is not None:
            raise problem
