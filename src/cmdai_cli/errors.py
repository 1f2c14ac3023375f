"""The one exception family of cmdai and the exit code of each member.

Core modules raise these; `commands/_common.py` turns them into a one-line message on
stderr and the exit code below. Nothing else decides exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    DATA = 4
    REFUSED = 5
    UNREACHABLE = 6
    INTERRUPTED = 130


class CmdaiError(Exception):
    """Base of every error that is the user's or the environment's, not a bug."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def describe(self) -> str:
        """The one line said on stderr: the message, and the hint when there is one."""
        return self.message + (f" (hint: {self.hint})" if self.hint else "")


class UsageError(CmdaiError):
    """A flag or argument value that cannot be used."""

    exit_code = ExitCode.USAGE


class ConfigError(CmdaiError):
    """The profile file or the settings it resolves to are unusable."""

    exit_code = ExitCode.CONFIG


class DataError(CmdaiError):
    """Input data (an event file, a mapping file) that cannot be read as asked."""

    exit_code = ExitCode.DATA

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.field = field
        where = source or ""
        if line is not None:
            where += f":{line}"
        if field:
            where += f" ({field})" if where else field
        super().__init__(f"{where}: {message}" if where else message, hint=hint)


class RemoteRefused(CmdaiError):
    """A remote service answered, and said no."""

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


class RemoteUnreachable(CmdaiError):
    """A remote service could not be reached or did not answer in time."""

    exit_code = ExitCode.UNREACHABLE


class PartialFailure(CmdaiError):
    """The command ran, but part of its work was not done (for example events not sent)."""

    exit_code = ExitCode.FAILURE
