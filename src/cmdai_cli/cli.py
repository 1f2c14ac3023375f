"""The `cmdai` application: global options, command groups, and the entry point.

Every Tab press and every `--version` runs this, so the command modules are loaded
lazily: `COMMANDS` names each top-level command and the module under
`cmdai_cli.commands` that registers it, and only the module of the command being run
(or completed) is imported. Listing all commands (`cmdai --help`, completing a
command name) loads them all. Help is rendered by the plain formatter, not Rich.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import typer
from typer._click.shell_completion import CompletionItem
from typer._coercion import PassThroughRuntimeParam, RuntimeParam
from typer.core import TyperCommand, TyperGroup

from cmdai_cli import output
from cmdai_cli.commands import _common
from cmdai_cli.commands._common import COMPLETE_VAR, DebugOpt, JsonOpt, ProfileOpt, VersionOpt

# Top-level command name -> module in cmdai_cli.commands whose `register(app)` adds it.
# In the order `cmdai --help` lists them. tests/test_help.py fails when a module
# registers a name missing here.
COMMANDS: dict[str, str] = {
    "connect": "connect",
    "profile": "profile",
    "send-test": "send_test",
    "listen": "listen",
    "expect": "expect",
    "map-payload": "map_payload",
    "validate": "validate",
    "plan": "plan",
    "destination": "destination",
    "replay": "replay",
    "doctor": "doctor",
    "completion": "completion",
}


# Long enough for a command's whole first sentence: the help formatter wraps it.
SHORT_HELP_LIMIT = 200


@dataclass(frozen=True)
class _AsGiven(RuntimeParam):
    """No conversion: for completion, where option values are parsed but never used."""

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        return value


def cheap_coercion(params: list[Any], *, completing: bool) -> None:
    """Keep pydantic out of `--help` and of completion.

    Typer converts every option through a pydantic TypeAdapter that it builds the first
    time the option is processed, even when it was not given (its own --help included),
    and importing pydantic costs more than all the rest of start-up. Text and flags from
    the command line need no conversion, so they get typer's own pass-through; while
    completing, values are parsed but never used (conversion errors are ignored), so
    nothing is converted at all. Anything else keeps typer's conversion.
    """
    for param in params:
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "_runtime_param", 0) is not None:
            continue
        info = desc.parameter_info
        if completing:
            param._runtime_param = _AsGiven(info, desc.annotation)
            continue
        plain = (
            desc.file_annotation is None
            and info.parser is None
            and param.nargs == 1
            and not getattr(param, "multiple", False)
            and not getattr(param, "envvar", None)
        )
        if plain and desc.annotation is str:
            param._runtime_param = PassThroughRuntimeParam(info, str)
        elif plain and desc.annotation is bool and getattr(param, "is_flag", False):
            param._runtime_param = PassThroughRuntimeParam(info, bool)


class FastCommand(TyperCommand):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        cheap_coercion(self.get_params(ctx), completing=ctx.resilient_parsing)
        return super().parse_args(ctx, args)


class HelpGroup(TyperGroup):
    """A group whose command list shows each command's first sentence, wrapped, not cut."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        cheap_coercion(self.get_params(ctx), completing=ctx.resilient_parsing)
        return super().parse_args(ctx, args)

    def listing(self, ctx: Any) -> list[tuple[str, Any]]:
        """The visible commands, by name, as a list of commands shows them."""
        found = ((name, self.get_command(ctx, name)) for name in self.list_commands(ctx))
        return [(name, cmd) for name, cmd in found if cmd is not None and not cmd.hidden]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, cmd.get_short_help_str(SHORT_HELP_LIMIT)) for name, cmd in self.listing(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _adopt(commands: Mapping[str, Any]) -> None:
    """Give typer's commands and groups the behaviour above (their classes add no state)."""
    for cmd in commands.values():
        if type(cmd) is TyperCommand:
            cmd.__class__ = FastCommand
        elif type(cmd) is TyperGroup:
            cmd.__class__ = HelpGroup
        if isinstance(cmd, TyperGroup):
            _adopt(cmd.commands)


def registered(module_name: str) -> typer.Typer:
    """A Typer holding what one command module registers."""
    module = importlib.import_module(f"cmdai_cli.commands.{module_name}")
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    module.register(holder)
    return holder


def commands_of(holder: typer.Typer) -> dict[str, Any]:
    """The click commands of a holder, by name, options and all."""
    if not holder.registered_commands and not holder.registered_groups:
        return {}
    commands = dict(typer.main.get_group(holder).commands)
    _adopt(commands)
    return commands


def load_module_commands(module_name: str) -> dict[str, Any]:
    """The click commands that one command module registers, by name."""
    return commands_of(registered(module_name))


def outline_of(holder: typer.Typer) -> dict[str, Any] | None:
    """Each command of a holder with its name and help but no options, or None.

    Converting a command's options is most of the cost of loading it, and a list of
    commands shows none of them. Name and help are resolved as typer resolves them for
    the full command (tests/test_help.py compares the two). None when a group merges
    its commands into the parent (no name): only converting it tells them.
    """
    outline: dict[str, Any] = {}
    for info in holder.registered_commands:
        if info.callback is None:
            return None
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        text = inspect.cleandoc(info.help) if info.help is not None else None
        outline[name] = TyperCommand(
            name,
            help=text if text is not None else inspect.getdoc(info.callback),
            short_help=info.short_help,
            hidden=info.hidden,
            deprecated=info.deprecated,
        )
    for group_info in holder.registered_groups:
        solved = typer.main.solve_typer_info_defaults(group_info)
        if not solved.name:
            return None
        outline[solved.name] = TyperCommand(
            solved.name,
            help=solved.help,
            short_help=solved.short_help,
            hidden=bool(solved.hidden),
            deprecated=bool(solved.deprecated),
        )
    return outline


class LazyGroup(HelpGroup):
    """A group that imports a command's module only when that command is needed.

    Listing the commands (`cmdai --help`, completing a command name) imports every
    module but converts none: the listing needs names and help, not options.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holders: dict[str, typer.Typer] = {}
        self._loaded: set[str] = set()

    def _registered(self, module_name: str) -> typer.Typer:
        if module_name not in self._holders:
            self._holders[module_name] = registered(module_name)
        return self._holders[module_name]

    def _load(self, module_name: str) -> None:
        if module_name in self._loaded:
            return
        self._loaded.add(module_name)
        for name, cmd in commands_of(self._registered(module_name)).items():
            self.commands.setdefault(name, cmd)

    def list_commands(self, ctx: Any) -> list[str]:
        """Every command, loading every module: what a listing shows must be complete."""
        for module_name in dict.fromkeys(COMMANDS.values()):
            self._load(module_name)
        return self._ordered(self.commands)

    def _ordered(self, commands: Mapping[str, Any]) -> list[str]:
        return [name for name in COMMANDS if name in commands] + [
            name for name in commands if name not in COMMANDS
        ]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            module_name = COMMANDS.get(cmd_name)
            if module_name is not None:
                self._load(module_name)
            else:
                # A name the table does not know: a module may register it all the same.
                self.list_commands(ctx)
        return self.commands.get(cmd_name)

    def listing(self, ctx: Any) -> list[tuple[str, Any]]:
        found: dict[str, Any] = {}
        for module_name in dict.fromkeys(COMMANDS.values()):
            outline = None
            if module_name not in self._loaded:
                outline = outline_of(self._registered(module_name))
            if outline is None:
                self._load(module_name)
            else:
                found.update(outline)
        found.update(self.commands)
        return [(name, found[name]) for name in self._ordered(found) if not found[name].hidden]

    def shell_complete(self, ctx: Any, incomplete: str) -> list[CompletionItem]:
        results = [
            CompletionItem(name, help=cmd.get_short_help_str())
            for name, cmd in self.listing(ctx)
            if name.startswith(incomplete)
        ]
        # The group's own options, as TyperGroup adds them after its commands.
        results.extend(super(TyperGroup, self).shell_complete(ctx, incomplete))
        return results


app = typer.Typer(
    name="cmdai",
    cls=LazyGroup,
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
    if os.environ.get(COMPLETE_VAR):
        # The app is built without typer's --install-completion options, which is what
        # would otherwise register the bash/zsh/fish completion classes.
        from typer._completion_classes import completion_init

        completion_init()
    try:
        app(prog_name="cmdai")
    finally:
        # The process ends here. On the way out the interpreter runs one more cyclic
        # collection over every object still alive, which after a replay takes longer
        # than its last batch; what it could free is about to go anyway. Files are
        # closed by then (their owners close them), and stdout/stderr are flushed.
        gc.freeze()
