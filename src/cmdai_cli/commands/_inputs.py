"""What the commands that read events (map-payload, validate, replay) share on the command line."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from cmdai_cli.events.records import DEFAULT_MAX_RECORD_BYTES

__all__ = ["RECORD_BYTES", "FilesArg", "MaxRecordBytesOpt", "OnErrorName"]

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
