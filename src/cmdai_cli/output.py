"""Rendering for commands: data on stdout, diagnostics on stderr, JSON when asked.

Used only by `commands/`. Rich is imported on first use so that `--help` stays fast.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from cmdai_cli import redact
from cmdai_cli.printable import printable

if TYPE_CHECKING:
    from rich.console import Console

_consoles: dict[str, Console] = {}


class _ClosedOutput(io.TextIOBase):
    """stdout when cmdai was started with it closed (`>&-`): writing data there fails."""

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        raise OSError(errno.EBADF, "standard output is closed: nowhere to write the output")

    @property
    def buffer(self) -> _ClosedOutput:
        """The binary side (commands that write bytes): refused alike."""
        return self


def fill_closed_streams() -> None:
    """Give a standard stream that was closed at start a place (/dev/null), so that no
    file cmdai opens later takes its descriptor; data for a closed stdout is refused."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if name == "stdout":
            sys.stdout = _ClosedOutput()
        else:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


def console(stderr: bool = False) -> Console:
    key = "err" if stderr else "out"
    if key not in _consoles:
        # Imported here: Rich's console costs about 15-25 ms (python -X importtime) that
        # `--help`, `--version` and Tab completion, which load this module, never use.
        from rich.console import Console

        # Rich's own NO_COLOR support drops colours but keeps bold and other styles;
        # no-color.org asks for no colour, and a plain table is what a script wants too.
        plain = bool(os.environ.get("NO_COLOR"))
        _consoles[key] = Console(
            stderr=stderr,
            highlight=False,
            soft_wrap=True,
            color_system=None if plain else "auto",
        )
    return _consoles[key]


def reset() -> None:
    """Forget cached consoles (the streams change between in-process test runs)."""
    _consoles.clear()


def emit_json(data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False, default=str)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate from outside (a key "\ud800" in a plan file) has no UTF-8:
            # JSON's own escapes carry it.
            text = json.dumps(data, ensure_ascii=True, default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def shown(text: str) -> str:
    """`text` with what a terminal would act on escaped, line by line (see `printable`)."""
    return "\n".join(map(printable, text.split("\n")))


def out(text: str) -> None:
    """A plain line of data on stdout, made printable."""
    sys.stdout.write(shown(text) + "\n")


def info(text: str) -> None:
    """A diagnostic line on stderr, with every known secret masked, made printable."""
    sys.stderr.write(shown(redact.scrub(text)) + "\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    info(f"cmdai: warning: {text}")


def error(text: str) -> None:
    info(f"cmdai: error: {text}")


def is_terminal(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def styled() -> bool:
    """Whether stdout is a terminal that takes colour and symbols (no NO_COLOR).

    Piped, or under NO_COLOR (no-color.org), a command prints plain ASCII text that
    scripts and logs can read.
    """
    return is_terminal() and not os.environ.get("NO_COLOR")


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    # Imported here, as the console is: a table adds about 3-12 ms more.
    from rich.table import Table
    from rich.text import Text

    grid = Table(*columns, title=title, show_edge=False, header_style="bold")
    for row in rows:
        # Text, not str: a cell is a value from outside, never Rich markup.
        grid.add_row(*(Text("" if cell is None else printable(cell)) for cell in row))
    console().print(grid)
