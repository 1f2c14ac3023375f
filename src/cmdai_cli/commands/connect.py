"""`cmdai connect`: store a Segment write key in the active profile."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command
from cmdai_cli.errors import UsageError


def read_secret(value: str | None, *, what: str, env: str) -> str:
    """A secret from a flag, `-` (stdin), a hidden prompt on a terminal, or `$env`."""
    if value == "-":
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if value is not None:
        return value
    if sys.stdin.isatty():
        return str(typer.prompt(what.capitalize(), hide_input=True))
    if os.environ.get(env):
        return os.environ[env]
    raise UsageError(f"no {what} given: use --{what.replace(' ', '-')} VALUE, or - to read stdin")


def register(app: typer.Typer) -> None:
    command(app, "connect")(connect)


def connect(
    write_key: Annotated[
        str | None,
        typer.Option(
            "--write-key",
            help="The Segment source's write key; '-' reads it from stdin. "
            "Prompted for (hidden) on a terminal when not given.",
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="Segment region of the workspace: us or eu."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Tracking API base URL, overriding the region's host."),
    ] = None,
    send_test: Annotated[
        bool,
        typer.Option(
            "--send-test",
            help="Then send a test event and report whether Segment accepted it "
            "(exit 5 refused, 6 unreachable).",
        ),
    ] = False,
) -> None:
    """Validate a Segment write key and store it in the active profile."""
    from cmdai_cli import profile, redact

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
    test = None
    if send_test:
        from cmdai_cli.commands import send_test as sending

        message, event = sending.build(None, None, None, {})
        test, _ = sending.perform(message, event, local=False, host=None, timeout=15.0)
        result["send_test"] = test
    if STATE.json:
        output.emit_json(result)
    else:
        output.out(
            f"Stored write key {result['write_key']} in profile '{name}' ({store.path}); "
            f"region {region_used}, host {host_used}"
        )
        if test is not None:
            sending.render(test, None)
    if test is not None:
        sending.raise_for(test)
