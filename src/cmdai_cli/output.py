"""Rendering for commands: data on stdout, diagnostics on stderr, JSON when asked.

Used only by `commands/`. Rich is imported on first use so that `--help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from cmdai_cli import redact
from cmdai_cli.printable import printable

if TYPE_CHECKING:
    from rich.console import Console

_consoles: dict[str, Console] = {}


def console(stderr: bool = False) -> Console:
    key = "err" if stderr else "out"
    if key not in _consoles:
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
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
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


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    grid = Table(*columns, title=title, show_edge=False, header_style="bold")
    for row in rows:
        # Text, not str: a cell is a value from outside, never Rich markup.
        grid.add_row(*(Text("" if cell is None else printable(cell)) for cell in row))
    console().print(grid)
