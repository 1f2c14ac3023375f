"""Reading a secret given to a command: from its flag, stdin, the environment, or a prompt."""

from __future__ import annotations

import os
import sys

import typer

from cmdai_cli.errors import UsageError

# A secret is a line of at most this many characters (write keys are about 32).
SECRET_LIMIT = 4096


def read_secret(value: str | None, *, what: str, env: str) -> str:
    """A secret from its flag, `-` (a line of stdin), `$env`, or a hidden prompt.

    In that order: a value given on purpose wins, and the environment is read before a
    terminal is asked, so that an exported variable is never prompted for.
    """
    if value == "-":
        # Bounded: stdin may be /dev/zero or a stream that never ends a line.
        line = sys.stdin.readline(SECRET_LIMIT + 1)
        if len(line.rstrip("\r\n")) > SECRET_LIMIT:
            raise UsageError(
                f"the {what} on stdin is over {SECRET_LIMIT} characters, more than cmdai reads"
            )
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
