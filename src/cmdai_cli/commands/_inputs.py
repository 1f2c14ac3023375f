"""What the commands that read events (map-payload, replay) share on the command line."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer


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
