"""What the commands that read events (map-payload, validate, replay) share: options, and
how a skipped record is reported."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cmdai_cli import output
from cmdai_cli.events.records import DEFAULT_MAX_RECORD_BYTES, BadRecord

__all__ = ["RECORD_BYTES", "FilesArg", "MaxRecordBytesOpt", "OnErrorName", "report_bad_record"]

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
