"""Options that several commands take, declared once so that they read and parse alike.

Use them as parameter annotations: `host: HostOpt = None`. Each keeps Typer's cheap
parsing (`_fast_typer`): text and flags pass through, `--region` is shown as a choice, `--mapping`
a path, `--timeout` a number of seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    ),
]
