"""Reading a secret given to a command: from its flag, stdin, the environment, or a prompt."""

from __future__ import annotations

import os
import sys

import typer

from cmdai_cli.errors import UsageError


def read_secret(value: str | None, *, what: str, env: str) -> str:
    """A secret from its flag, `-` (a line of stdin), `$env`, or a hidden prompt.

    In that order: a value given on purpose wins, and the environment is read before a
    terminal is asked, so that an exported variable is never prompted for.
    """
    if value == "-":
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if value is not None:
        return value
    if os.environ.get(env):
        return os.environ[env]
    if sys.stdin.isatty():
        return str(typer.prompt(what.capitalize(), hide_input=True))
    raise UsageError(
        f"no {what} given: use --{what.replace(' ', '-')} VALUE, - to read stdin, or ${env}"
    )
