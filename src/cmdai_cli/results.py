"""What a core function hands back to its command: the shape every run's result has.

A command resolves its settings once, builds a typed request, calls one core function
and gets back a result that follows `Result`: it knows its own `--json` document
(`as_json()`), the run's exit code, and, when that code is not 0, the one line said on
stderr (`problem`). `commands/_common.finish` is the only reader of the three, so no
command decides an exit code of its own.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from cmdai_cli.errors import ExitCode


class Result(Protocol):
    def as_json(self) -> dict[str, Any]: ...

    @property
    def exit_code(self) -> ExitCode: ...

    @property
    def problem(self) -> str | None: ...


class Done:
    """A base for results of runs that cannot fail once they return: exit 0, nothing to
    say on stderr (a failure is raised from the `errors` family before there is one)."""

    exit_code: ClassVar[ExitCode] = ExitCode.OK
    problem: ClassVar[None] = None
