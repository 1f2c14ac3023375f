"""The `cmdai` application: global options, command groups, and the entry point."""

from __future__ import annotations

import typer

from cmdai_cli import output
from cmdai_cli.commands import (
    _common,
    connect,
    destination,
    listen,
    map_payload,
    profile,
    replay,
    send_test,
)
from cmdai_cli.commands._common import DebugOpt, JsonOpt, ProfileOpt, VersionOpt

app = typer.Typer(
    name="cmdai",
    help="Set up and exercise the Command AI <-> Segment integration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    profile_: ProfileOpt = None,
    json_: JsonOpt = False,
    debug_: DebugOpt = False,
    version_: VersionOpt = False,
) -> None:
    """Set up and exercise the Command AI <-> Segment integration.

    Settings resolve in this order: command-line flag, environment variable
    (CMDAI_WRITE_KEY, CMDAI_ORG_ID, ...), the active profile, the default.
    """
    _common.reset_globals()
    output.reset()
    _common.set_globals(profile_, json_, debug_)


connect.register(app)
profile.register(app)
send_test.register(app)
listen.register(app)
map_payload.register(app)
destination.register(app)
replay.register(app)


def main() -> None:
    app(prog_name="cmdai")
