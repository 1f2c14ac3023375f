"""The `cmdai` application: global options, the table of commands, and the entry point.

Every Tab press and every `--version` runs this, so the command modules are loaded
lazily (`_fast_typer.LazyGroup`): `COMMANDS` names each top-level command, the module
under `cmdai_cli.commands` that registers it, and its short help; only the module of the
command being run (or completed) is imported, and a listing imports none. Help is
rendered by the plain formatter, not Rich.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import typer

from cmdai_cli import _speed, output
from cmdai_cli._fast_typer import Entry, LazyGroup, init_completion
from cmdai_cli.commands import _common
from cmdai_cli.commands._common import COMPLETE_VAR, DebugOpt, JsonOpt, ProfileOpt, VersionOpt

# Top-level command name -> the module whose `register(app)` adds it, and the first
# sentence of its help. In the order `cmdai --help` lists them. tests/test_help.py fails
# when a module registers a name missing here or its help says something else.
COMMANDS: dict[str, Entry] = {
    "connect": Entry(
        "connect", "Check a Segment write key on Segment's CDN and store it in the active profile."
    ),
    "profile": Entry("profile", "List, show, choose and delete profiles."),
    "send-test": Entry(
        "send_event",
        "Send a test event to the Segment source and report whether Segment accepted it.",
    ),
    "listen": Entry(
        "listen", "Serve Segment's Tracking API locally and show each message as it arrives."
    ),
    "expect": Entry(
        "expect", "Assert what a collector received: events, users, properties and counts."
    ),
    "map-payload": Entry(
        "map_payload", "Show what Command AI records from Segment events, one record per event."
    ),
    "validate": Entry(
        "validate", "Check Segment events against a tracking plan, and list every violation."
    ),
    "plan": Entry(
        "plan", "Tracking plans: show the built-in one or a plan file, pull one from Segment."
    ),
    "destination": Entry(
        "destination", "Set up Segment's Command AI and webhook destinations for a source."
    ),
    "replay": Entry(
        "replay", "Resend recorded events to Segment, the Command AI webhook, or bulk-identify."
    ),
    "status": Entry(
        "status",
        "Show whether events flow: into the source, to its destinations, through filters.",
    ),
    "trigger": Entry(
        "trigger",
        "Make realistic Command AI traffic from scenarios and send it to the Segment source.",
    ),
    "doctor": Entry(
        "doctor",
        "Check the profile, the write key, and that Segment, the webhook and the Public API "
        "answer.",
    ),
    "completion": Entry("completion", "Print the Tab-completion script for SHELL on stdout."),
}


class RootGroup(LazyGroup):
    @staticmethod
    def table() -> Mapping[str, Entry]:
        # Looked up at each call, so that a test may replace the table.
        return COMMANDS


app = typer.Typer(
    name="cmdai",
    cls=RootGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
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


def main() -> None:
    output.fill_closed_streams()
    if os.environ.get(COMPLETE_VAR):
        init_completion()
    try:
        app(prog_name="cmdai")
    except OSError as exc:
        # Help or a usage message that could not be written (stdout on a full disk).
        sys.stderr.write(f"cmdai: error: {_common.os_problem(exc)}\n")
        _common.quiet_stdout()
        sys.exit(1)
    finally:
        _speed.skip_final_collection()
