"""Typer, started fast: every touch point of Typer's internals that cmdai uses, in one place.

Every Tab press and every `--help` runs `cmdai`, so it must start about as fast as Python
imports typer (benchmarks/startup.py). Two things make that so:

- `LazyGroup`, Click's documented lazy-loading pattern (a group overriding
  `list_commands` and `get_command`) over a static table of command names, modules and
  short help: a listing imports no command module, and running a command imports one.
- `cheap_coercion`, which keeps pydantic out of `--help` and of completion. It relies on
  Typer's private `typer._coercion` and each parameter's `type_descriptor` and
  `_runtime_param`. When a Typer upgrade removes or changes them, `FAST_COERCION` is
  False (or the parameter is skipped) and Typer converts as it always does: slower,
  never broken. tests/test_fast_typer.py says whether the fast path is active.

Commands get these classes through the public `cls=` argument of `Typer.command` and of
`typer.Typer`, not by changing objects' classes after the fact.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import typer
from typer._click.exceptions import BadParameter, ClickException

# typer.completion is public; it re-exports these without declaring them.
from typer.completion import completion_init, get_completion_script  # type: ignore[attr-defined]
from typer.core import TyperCommand, TyperGroup

try:
    from typer import _completion_classes
except ImportError:  # pragma: no cover - another Typer: its own bash class stays
    _completion_classes = None  # type: ignore[assignment]

from cmdai_cli import output
from cmdai_cli.values import must_be

try:
    from typer._click.shell_completion import CompletionItem
    from typer._coercion import PassThroughRuntimeParam, RuntimeParam
except ImportError:  # pragma: no cover - only on a Typer without these internals
    FAST_COERCION = False
    FAST_COMPLETION = False
else:
    FAST_COERCION = True
    FAST_COMPLETION = True

    @dataclass(frozen=True)
    class _AsGiven(RuntimeParam):
        """No conversion: for completion, where option values are parsed but never used."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            return value


# Long enough for a command's whole first sentence: the help formatter wraps it.
SHORT_HELP_LIMIT = 200


def fast_path_active() -> bool:
    """Whether this Typer offers every internal the fast path uses."""
    return FAST_COERCION and FAST_COMPLETION


def _cheap_param(param: Any, *, completing: bool) -> None:
    desc = getattr(param, "type_descriptor", None)
    if desc is None or getattr(param, "_runtime_param", 0) is not None:
        return
    info = desc.parameter_info
    if completing:
        param._runtime_param = _AsGiven(info, desc.annotation)
        return
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


def cheap_coercion(params: list[Any], *, completing: bool) -> None:
    """Keep pydantic out of `--help` and of completion.

    Typer converts every option through a pydantic TypeAdapter that it builds the first
    time the option is processed, even when it was not given (its own --help included),
    and importing pydantic costs more than all the rest of start-up. Text and flags from
    the command line need no conversion, so they get typer's own pass-through; while
    completing, values are parsed but never used (conversion errors are ignored), so
    nothing is converted at all. Anything else keeps typer's conversion, and so does
    every parameter whose internals are not as expected.
    """
    if not FAST_COERCION:
        return
    for param in params:
        try:
            _cheap_param(param, completing=completing)
        except (AttributeError, TypeError):
            # Not the internals this was written for: leave the parameter to Typer.
            continue


class FastCommand(TyperCommand):
    """A Typer command that converts its options cheaply (see `cheap_coercion`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        cheap_coercion(self.get_params(ctx), completing=ctx.resilient_parsing)
        return super().parse_args(ctx, args)


class HelpGroup(TyperGroup):
    """A group whose command list shows each command's first sentence, wrapped, not cut.

    Named alone (`cmdai`, `cmdai profile`), it prints its help on stdout and exits 0, as
    gh does: asking for the list of commands is not a mistake.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            ctx.exit(0)
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


@dataclass(frozen=True)
class Entry:
    """One top-level command as the static table knows it, without importing it."""

    module: str
    short_help: str


def holder_of(module_name: str, package: str) -> typer.Typer:
    """A Typer holding what one command module registers with its `register(app)`."""
    module = importlib.import_module(f"{package}.{module_name}")
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    module.register(holder)
    return holder


def commands_of(holder: typer.Typer) -> dict[str, Any]:
    """The Click commands of a holder, by name, options and all."""
    if not holder.registered_commands and not holder.registered_groups:
        return {}
    return dict(typer.main.get_group(holder).commands)


class LazyGroup(HelpGroup):
    """A group that imports a command's module only when that command is run or completed.

    `table()` gives each top-level command's module and short help, so a listing
    (`cmdai --help`, completing a command name) imports no command module at all. A name
    the table lacks is still found, by loading every module (tests/test_help.py keeps the
    table complete).
    """

    package = "cmdai_cli.commands"
    table: Callable[[], Mapping[str, Entry]] = staticmethod(dict)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the app; a usage error is one line on stderr, as every other error is.

        Typer's own ending (a usage block, then "Error: Invalid value for '--count':
        Input should be ...") is kept for callers that handle errors themselves
        (`standalone_mode=False`).
        """
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            output.error(usage_problem(exc))
            sys.exit(exc.exit_code)
        except typer.Abort:
            output.info("Aborted!")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()

    def _load(self, module_name: str) -> None:
        if module_name in self._loaded:
            return
        self._loaded.add(module_name)
        for name, cmd in commands_of(holder_of(module_name, self.package)).items():
            self.commands.setdefault(name, cmd)

    def list_commands(self, ctx: Any) -> list[str]:
        table = self.table()
        return list(table) + [name for name in self.commands if name not in table]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            entry = self.table().get(cmd_name)
            if entry is not None:
                self._load(entry.module)
            else:
                for module_name in dict.fromkeys(e.module for e in self.table().values()):
                    self._load(module_name)
        return self.commands.get(cmd_name)

    def listing(self, ctx: Any) -> list[tuple[str, Any]]:
        """Loaded commands as they are; the others as stand-ins holding the table's help."""
        table = self.table()
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is None:
                cmd = TyperCommand(name, help=table[name].short_help)
            if not cmd.hidden:
                rows.append((name, cmd))
        return rows

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        if not FAST_COMPLETION:  # plain Typer: loads every module to list them
            return list(super().shell_complete(ctx, incomplete))
        results: list[Any] = [
            CompletionItem(name, help=cmd.get_short_help_str())
            for name, cmd in self.listing(ctx)
            if name.startswith(incomplete)
        ]
        # The group's own options, as TyperGroup adds them after its commands.
        results.extend(super(TyperGroup, self).shell_complete(ctx, incomplete))
        return results


def init_completion() -> None:
    """Register the bash/zsh/fish completion classes (typer's public `completion` module).

    The app is built without typer's --install-completion options, which is what would
    otherwise register them. Bash's class is replaced by one that escapes candidates:
    bash inserts a candidate as it is, so `Survey Response` would become two words.
    """
    completion_init()
    if _completion_classes is None:  # pragma: no cover
        return

    class EscapingBashComplete(_completion_classes.BashComplete):
        def format_completion(self, item: Any) -> str:
            return bash_escape(str(item.value))

    _completion_classes.add_completion_class(EscapingBashComplete, "bash")  # type: ignore[attr-defined]


# What bash reads as something else than a letter of the word (bash(1), QUOTING).
_BASH_SPECIAL = frozenset(" \t\n'\"\\$`!&;|<>()*?[]{}#~")


def bash_escape(value: str) -> str:
    """`value` as one bash word, each special character escaped with a backslash.

    Backslashes rather than quotes: candidates that share a prefix (`Nudge\\ Shown`,
    `Nudge\\ Clicked`) then share an escaped prefix that bash can insert, and the next
    Tab still parses as one word.
    """
    return "".join("\\" + char if char in _BASH_SPECIAL else char for char in value)


# The zsh script is autoloaded from `fpath` by compinit: the first Tab runs the file
# itself as the completion function, so it completes at once instead of only defining
# the function and registering it for the next Tab (zshcompsys(1), "Autoloaded files";
# $zsh_eval_context says how the file is being run, zshparam(1)).
_ZSH_REGISTER = "compdef {func} {prog}"
_ZSH_AUTOLOAD = """if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  {func} "$@"
else
  compdef {func} {prog}
fi"""


def completion_script(*, prog_name: str, complete_var: str, shell: str) -> str:
    """The Tab-completion script for `shell` (bash, zsh or fish): Typer's, made to work."""
    script = str(get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=shell))
    if shell == "zsh":
        func = f"_{prog_name}_completion"
        register = _ZSH_REGISTER.format(func=func, prog=prog_name)
        if register in script:
            script = script.replace(register, _ZSH_AUTOLOAD.format(func=func, prog=prog_name))
    return script


def usage_problem(exc: ClickException) -> str:
    """A usage error in one line: the flag, what its value must be, what was given.

    Typer converts values with pydantic and words the error as pydantic does; the
    pydantic error it was raised from says what was expected and what was given.
    """
    if isinstance(exc, BadParameter) and exc.param is not None and exc.message:
        name = _param_name(exc.param)
        errors = getattr(exc.__cause__, "errors", None)
        found = errors(include_url=False) if callable(errors) else []
        choices = _choices(exc.param)
        if found and (choices or found[0].get("type") != "value_error"):
            return f"{name} {must_be(found[0], choices)}"
        # A check of the project's own, whose message says it all.
        message = re.sub(r"^Value error, ", "", exc.message).rstrip(".")
        return f"{name}: {message}"
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _param_name(param: Any) -> str:
    opts = [opt for opt in getattr(param, "opts", []) if opt.startswith("--")]
    if getattr(param, "param_type_name", "") == "option" and opts:
        return str(max(opts, key=len))
    return str(getattr(param, "human_readable_name", param.name)).upper()


def _choices(param: Any) -> list[str] | None:
    """The accepted values of an option typed by an Enum, as given on the command line."""
    desc = getattr(param, "type_descriptor", None)
    annotation = getattr(desc, "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    return None
