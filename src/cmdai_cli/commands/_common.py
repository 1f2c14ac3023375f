"""What every command shares: the global options and the one place errors become exits.

`command(app)` registers a function as a command with `--profile/-p`, `--json`,
`--debug` and `--version` added, so they work after any command as well as before it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import typer

from cmdai_cli import __version__, output, redact
from cmdai_cli._fast_typer import FastCommand, HelpGroup
from cmdai_cli.errors import CmdaiError, ExitCode, UsageError
from cmdai_cli.event_names import ALL
from cmdai_cli.values import check_url

if TYPE_CHECKING:
    from cmdai_cli.profile import Resolved
    from cmdai_cli.results import Result

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R", bound="Result")

# The environment variable through which a shell asks `cmdai` for completions.
COMPLETE_VAR = "_CMDAI_COMPLETE"


@dataclass
class State:
    profile: str | None = None
    json: bool = False
    debug: bool = False


STATE = State()


def resolve_settings(flags: Mapping[str, Any] | None = None, *, create: bool = False) -> Resolved:
    """The run's settings, resolved once: flag, then environment, then the active profile
    (--profile), then the default (`profile.resolve`). `flags` maps settings to the values
    given on the command line (None: not given); --region, --cdn-host and --api-host are
    checked here, each error naming its flag. A profile named by --profile or
    $CMDAI_PROFILE must exist, unless the command creates it (`create`). --token and
    --api-host say how to reach
    Segment's Public API this run: commands use them and never store them."""
    # Imported here: the profile loads pydantic, about 100 ms (python -X importtime) that
    # --help, --version and Tab completion never need (the profile loads Segment's
    # messages module too).
    from cmdai_cli import profile
    from cmdai_cli.segment.messages import REGION_HOSTS

    given = {key: value for key, value in (flags or {}).items() if value is not None}
    region = given.get("region")
    if region is not None and region not in REGION_HOSTS:
        raise UsageError(f"region {region!r} is not one of: {', '.join(REGION_HOSTS)}")
    for name, flag in (("cdn_host", "--cdn-host"), ("api_host", "--api-host")):
        if name in given:
            given[name] = check_url(given[name], what=flag)
    return profile.resolve(STATE.profile, given, create=create)


def complete_profiles(incomplete: str) -> list[str]:
    try:
        # Imported here: see `resolve_settings` (about 100 ms); only completing --profile
        # needs it.
        from cmdai_cli.profile import Store

        names = list(Store().load().profiles)
    except Exception:
        return []
    return [name for name in names if name.startswith(incomplete)]


def complete_events(incomplete: str) -> list[tuple[str, str]]:
    """Catalogue event names for `--event`, each described by its `properties.type`.

    Names hold spaces, which bash splits on insertion, so a lower-case start completes
    the `properties.type` values instead ("nudge_shown"); `--event` accepts both.
    """
    by_type = incomplete[:1].islower()
    pairs = {kind: name for name, kind in ALL} if by_type else dict(ALL)
    return [(value, about) for value, about in pairs.items() if value.startswith(incomplete)]


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"cmdai {__version__}\n")
        raise typer.Exit()


ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Profile to use (default: $CMDAI_PROFILE, the file's default_profile, 'default').",
        autocompletion=complete_profiles,
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version", help="Show the version and exit.", callback=_show_version, is_eager=True
    ),
]

_GLOBALS = {
    "profile_": (ProfileOpt, None),
    "json_": (JsonOpt, False),
    "debug_": (DebugOpt, False),
    "version_": (VersionOpt, False),
}


def set_globals(profile: str | None, json_: bool, debug: bool) -> None:
    """Merge global options; a value given later (after the command) wins."""
    if profile is not None:
        STATE.profile = profile
    STATE.json = STATE.json or json_
    STATE.debug = STATE.debug or debug
    setup_logging()


def reset_globals() -> None:
    STATE.profile, STATE.json, STATE.debug = None, False, False


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        level = "warning" if record.levelno >= logging.WARNING else "info"
        output.info(f"cmdai: {level}: {record.getMessage()}")


def setup_logging() -> None:
    logger = logging.getLogger("cmdai")
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.addFilter(redact.ScrubFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if STATE.debug else logging.WARNING)
    logger.propagate = False


def fail(exc: BaseException) -> typer.Exit:
    """Report an exception in one line on stderr and give the exit to raise."""
    if STATE.debug:
        sys.stderr.write(redact.scrub("".join(traceback.format_exception(exc))))
    if isinstance(exc, CmdaiError):
        output.error(exc.describe())
        return typer.Exit(int(exc.exit_code))
    if isinstance(exc, KeyboardInterrupt):
        output.error("interrupted")
        return typer.Exit(int(ExitCode.INTERRUPTED))
    if isinstance(exc, OSError):
        # The machine's doing (a full disk, a device error): what it said, not a bug report.
        output.error(os_problem(exc))
        quiet_stdout()
        return typer.Exit(int(ExitCode.FAILURE))
    detail = f"{type(exc).__name__}: {exc}"
    output.error(f"internal error: {detail} (run with --debug for the traceback)")
    return typer.Exit(int(ExitCode.FAILURE))


def os_problem(exc: OSError) -> str:
    """An OSError in the words of the system, with the file it concerns when known."""
    text = exc.strerror or str(exc)
    return f"{exc.filename}: {text}" if exc.filename else text


def quiet_stdout() -> None:
    """Point stdout at /dev/null when it cannot take more (the reader went away, as
    `| head` does, or the device failed), so that its last flush cannot fail on the way
    out; a stdout that still works is only flushed."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


def guarded(func: F) -> F:
    """Run a command body, turning any error into its one-line message and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        set_globals(
            kwargs.pop("profile_", None), kwargs.pop("json_", False), kwargs.pop("debug_", False)
        )
        kwargs.pop("version_", None)
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if type(exc).__module__.startswith(("typer", "click")):
                raise
            raise fail(exc) from None
        except KeyboardInterrupt as exc:
            raise fail(exc) from None

    sig = inspect.signature(func, eval_str=True)
    params = list(sig.parameters.values())
    # The signature's annotations are already evaluated: evaluating them again through
    # get_type_hints costs start-up time for every command.
    hints = {
        name: param.annotation
        for name, param in sig.parameters.items()
        if param.annotation is not inspect.Parameter.empty
    }
    if sig.return_annotation is not inspect.Signature.empty:
        hints["return"] = sig.return_annotation
    for name, (annotation, default) in _GLOBALS.items():
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
            )
        )
        hints[name] = annotation
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = hints
    del wrapper.__wrapped__
    return wrapper  # type: ignore[return-value]


def group(help: str) -> typer.Typer:
    """A group of subcommands (`cmdai profile ...`) that lists them as the root does."""
    return typer.Typer(cls=HelpGroup, help=help, no_args_is_help=True)


def command(app: typer.Typer, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Register `func` on `app` as a command with the global options and error handling."""

    def decorate(func: F) -> F:
        kwargs.setdefault("cls", FastCommand)
        app.command(name, **kwargs)(guarded(func))
        return func

    return decorate


class Closing(Protocol):
    def close(self) -> None: ...


def stream(
    run: Callable[[], object], opened: Callable[[], Closing | None], summary: Callable[[], None]
) -> bool:
    """Run a command that writes records to stdout through a sink it opens with the first
    one (`opened()`: that sink, None until then). Once a sink is open it is closed, and the
    run summed up on stderr (`summary`), however the run ended; when the arguments failed
    nothing was written and there is no run to sum up. False when stdout's reader went
    away (`| head`): there is then no result to finish with."""
    try:
        run()
    except BrokenPipeError:
        quiet_stdout()
        return False
    finally:
        sink = opened()
        if sink is not None:
            try:
                sink.close()
            except BrokenPipeError:
                quiet_stdout()
            summary()
    return True


def finish(result: R, render: Callable[[R], None] | None) -> None:
    """End a command with its core's result: `--json` or `render`, then its exit code.

    The result's `problem` (the one line saying why the exit is not 0) goes to stderr
    after the data, so a script reading stdout gets the whole document either way.
    `render=None`: the command streamed its data as the run went, only the exit is left.
    """
    if render is None:
        pass
    elif STATE.json:
        output.emit_json(result.as_json())
    else:
        render(result)
    code = result.exit_code
    if code != ExitCode.OK:
        if result.problem:
            output.error(result.problem)
        raise typer.Exit(int(code))
