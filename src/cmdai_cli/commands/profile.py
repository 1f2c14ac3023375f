"""`cmdai profile`: list, show, choose and delete profiles."""

from __future__ import annotations

from typing import Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, complete_profiles
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

    store = profile.Store()
    config = store.load()
    active = profile.active_name(STATE.profile, config)
    if profile.named_profile(STATE.profile) is not None:
        profile.check_exists(active, config, store.path)
    rows = [
        {"name": name, "active": name == active, "default": name == config.default_profile}
        for name in config.profiles
    ]
    if STATE.json:
        output.emit_json({"path": str(store.path), "active": active, "profiles": rows})
        return
    if not rows:
        output.info(f"No profiles yet in {store.path}; `cmdai connect` creates one.")
    for row in rows:
        output.out(("* " if row["active"] else "  ") + str(row["name"]))


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

    resolved = profile.resolve(name or STATE.profile)
    values = resolved.masked()
    if STATE.json:
        output.emit_json(
            {
                "profile": resolved.profile,
                "path": str(resolved.path),
                "exists": resolved.exists,
                "settings": values,
                "sources": resolved.sources,
            }
        )
        return
    output.out(f"profile {resolved.profile} ({resolved.path})")
    rows = [[key, value, resolved.sources[key]] for key, value in values.items()]
    output.table(["setting", "value", "from"], rows)


@command(group, "use")
def use(name: NameArg) -> None:
    """Make NAME the default profile."""
    # Imported here: see `list_` (about 100 ms).
    from cmdai_cli import profile

    store = profile.Store()
    profile.use_profile(store, name)
    if STATE.json:
        output.emit_json({"default_profile": name, "path": str(store.path)})
    else:
        output.out(f"Default profile is now '{name}'")


@command(group, "delete")
def delete(name: NameArg) -> None:
    """Delete profile NAME from the file."""
    # Imported here: see `list_` (about 100 ms).
    from cmdai_cli import profile

    store = profile.Store()
    profile.delete_profile(store, name)
    if STATE.json:
        output.emit_json({"deleted": name, "path": str(store.path)})
    else:
        output.out(f"Deleted profile '{name}'")


@command(group, "path")
def path() -> None:
    """Print the path of the profile file."""
    # Imported here: see `list_` (about 100 ms).
    from cmdai_cli import profile

    where = profile.Store().path
    if STATE.json:
        output.emit_json({"path": str(where)})
    else:
        output.out(str(where))
