"""Options that several commands take, declared once so that they read and parse alike.

Use them as parameter annotations: `host: HostOpt = None`. Each keeps Typer's cheap
parsing (`_fast_typer`): text and flags pass through, `--region` is shown as a choice, `--mapping`
a path, `--timeout` a number of seconds. Also here: the options of the commands that read
events (map-payload, validate, replay), and reading a secret option's value.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdai_cli import output
from cmdai_cli.errors import UsageError
from cmdai_cli.events import DEFAULT_MAX_RECORD_BYTES

if TYPE_CHECKING:
    from cmdai_cli.events.records import BadRecord

# The regions a Segment workspace may live in (integration-facts: US and EU hosts).
REGIONS = ("us", "eu")


def complete_regions(incomplete: str) -> list[str]:
    return [name for name in REGIONS if name.startswith(incomplete)]


HostOpt = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Segment Tracking API base URL, overriding the profile's and the region's host.",
        show_default=False,
    ),
]
# Shown and completed as a choice, but checked by the core (as the profile's `region` is),
# so that a wrong value is one line on stderr like every other usage error of cmdai.
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="Segment region of the workspace (default: the profile's, then us).",
        metavar="[" + "|".join(REGIONS) + "]",
        autocompletion=complete_regions,
        show_default=False,
    ),
]
CdnHostOpt = Annotated[
    str | None,
    typer.Option(
        "--cdn-host",
        help="Segment CDN base URL, where a write key's source settings are "
        "(default: $CMDAI_CDN_HOST, the profile's, then https://cdn.segment.com).",
        show_default=False,
    ),
]
ApiHostOpt = Annotated[
    str | None,
    typer.Option(
        "--api-host",
        help="Segment Public API base URL (default: the profile's, then the region's host).",
        show_default=False,
    ),
]
MappingOpt = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        help="TOML file with a [mapping] table (default: the profile's mapping).",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Seconds each request may take in all (connecting, sending, the whole answer).",
        min=0.1,
        max=300,
    ),
]
MappingOrRecommendedOpt = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        help="'recommended' (whole event) or a TOML file with a [mapping] table.",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Segment Public API token (default: $CMDAI_PUBLIC_API_TOKEN, then the profile).",
        show_default=False,
    ),
]
ApiTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Seconds each request to the Public API may take in all (connecting, sending, "
        "the whole answer); the command gives up after 8 times this in all.",
        min=0.5,
        max=300,
    ),
]
PlanOpt = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        help="Tracking plan file (`cmdai plan pull --out`, `cmdai plan show --builtin --json`) "
        "that every message is checked against.",
        show_default=False,
        dir_okay=False,
        readable=False,  # an unreadable plan is a plan file problem (exit 3), said by the loader
    ),
]


# ---------------------------------------------------------------- reading events

RECORD_BYTES = DEFAULT_MAX_RECORD_BYTES  # --max-record-bytes's default


class OnErrorName(str, Enum):
    fail = "fail"
    skip = "skip"


FilesArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="FILE",
        help="Event files, directories, glob patterns or URLs (s3://, gs://, https://: "
        "an object, a prefix or a pattern); '-' or none reads stdin.",
        show_default=False,
    ),
]


def event_files(files: list[str] | None) -> list[str]:
    """The FILE arguments, saying on stderr when events will be read from a terminal.

    With no file, events come from stdin, as with jq; on a terminal that would look like
    a hang, so the wait is named and how to end it.
    """
    given = files or []
    reads_stdin = not given or "-" in given
    if reads_stdin and output.is_terminal(sys.stdin):
        output.info("cmdai: reading events from stdin (end with Ctrl-D, or give a FILE)")
    return given


MaxRecordBytesOpt = Annotated[
    int,
    typer.Option(
        "--max-record-bytes",
        help="A record (a line, or one JSON value) larger than this many bytes is a bad "
        "record (see --on-error), found without reading it into memory.",
        min=1024,
    ),
]


def report_bad_record(bad: BadRecord) -> None:
    """Say on stderr which record `--on-error skip` skipped, where, and why."""
    where = bad.source + (f":{bad.line}" if bad.line is not None else "")
    output.warn(f"{where}: skipped record {bad.position}: {bad.reason}")


# ---------------------------------------------------------------- secrets


# A secret is a line of at most this many characters (write keys are about 32).
SECRET_LIMIT = 4096


def read_secret(value: str | None, *, what: str, env: str) -> str:
    """A secret from its flag, `-` (a line of stdin), `$env`, or a hidden prompt.

    In that order: a value given on purpose wins, and the environment is read before a
    terminal is asked, so that an exported variable is never prompted for.
    """
    if value == "-":
        # Bounded: stdin may be /dev/zero or a stream that never ends a line.
        line = sys.stdin.readline(SECRET_LIMIT + 1)
        if len(line.rstrip("\r\n")) > SECRET_LIMIT:
            raise UsageError(
                f"the {what} on stdin is over {SECRET_LIMIT} characters, more than cmdai reads"
            )
        return line.rstrip("\r\n")
    if value is not None:
        return value
    if os.environ.get(env):
        return os.environ[env]
    if sys.stdin.isatty():
        return str(typer.prompt(what.capitalize(), hide_input=True))
    raise UsageError(
        f"no {what} given: use --{what.replace(' ', '-')} VALUE, - to read stdin, or ${env}"
    )
