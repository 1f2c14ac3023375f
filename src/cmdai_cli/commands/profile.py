"""`cmdai profile`: list, show, choose and delete profiles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, complete_profiles, finish

if TYPE_CHECKING:
    from cmdai_cli.profile import Listing, Resolved
from cmdai_cli.commands._common import group as new_group

group = new_group("List, show, choose and delete profiles.")

NameArg = Annotated[
    str, typer.Argument(help="Profile name.", autocompletion=complete_profiles, show_default=False)
]


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="profile")


@command(group, "list")
def list_() -> None:
    """List the profiles in the file; the active one is marked."""
    # Imported here (and below): the profile loads pydantic, about 100 ms (python -X
    # importtime) that --help and Tab completion never need.
    from cmdai_cli import profile

    finish(profile.list_profiles(STATE.profile), _render_listing)


def _render_listing(listing: Listing) -> None:
    if not listing.names:
        output.info(f"No profiles yet in {listing.path}; `cmdai connect` creates one.")
    for name in listing.names:
        output.out(("* " if name == listing.active else "  ") + name)


@command(group, "show")
def show(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Profile name (default: the active profile).",
            autocompletion=complete_profiles,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show a profile's resolved settings and where each comes from; secrets masked."""
    # Imported here: see `list_` (about 100 ms).
    from cmdai_cli import profile

    finish(profile.resolve(name or STATE.profile), _render_settings)


def _render_settings(resolved: Resolved) -> None:
    output.out(f"profile {resolved.profile} ({resolved.path})")
    rows = [[key, value, resolved.sources[key]] for key, value in resolved.masked().items()]
    output.table(["setting", "value", "from"], rows)


@command(group, "use")
def use(name: NameArg) -> None:
    """Make NAME the default profile."""
    # Imported here: see `list_` (about 100 ms).
    from cmdai_cli import profile

    finish(profile.choose_profile(name), lambda c: output.out(f"Default profile is now '{c.name}'"))


@command(group, "delete")
def delete(name: NameArg) -> None:
    """Delete profile NAME from the file."""
    # Imported here: see `list_` (about 100 ms).
    from cmdai_cli import profile

    finish(profile.remove_profile(name), lambda c: output.out(f"Deleted profile '{c.name}'"))


@command(group, "path")
def path() -> None:
    """Print the path of the profile file."""
    # Imported here: see `list_` (about 100 ms).
    from cmdai_cli import profile

    finish(profile.locate(), lambda found: output.out(str(found.path)))
