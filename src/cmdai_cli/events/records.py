"""What reading yields, and what a bad record does.

Every event comes out as an `Event` with its source name, 1-based line, 0-based index
across all inputs and its size in bytes. A record that cannot be an event becomes a
`BadRecord` passed to an `ErrorPolicy`: with `fail` it raises DataError (file, line,
reason); with `skip` it is reported and counted, and reading goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from cmdai_cli.errors import DataError
from cmdai_cli.events import DEFAULT_MAX_RECORD_BYTES

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "BadRecord",
    "ErrorPolicy",
    "Event",
    "OnError",
    "too_large",
]

OnError = Literal["fail", "skip"]


def too_large(limit: int) -> str:
    """The reason given for a record over `limit` bytes."""
    return f"record larger than {limit} bytes (--max-record-bytes)"


class Event(NamedTuple):
    """One event read: where it came from, its position, the value and its size."""

    position: int
    source: str
    line: int
    value: dict[str, Any]
    size: int


class BadRecord(NamedTuple):
    """A record that is not a usable event, with where it is and why."""

    position: int | None
    source: str
    line: int | None
    reason: str


@dataclass
class ErrorPolicy:
    """What happens to a bad record: `fail` raises DataError, `skip` reports it.

    Either way it is counted in `reasons` first, so a summary written after a failure
    still counts the record that stopped the run.
    """

    mode: OnError = "fail"
    report: Callable[[BadRecord], None] | None = None
    reasons: Counter[str] = field(default_factory=Counter)

    def __call__(self, bad: BadRecord) -> None:
        self.reasons[bad.reason] += 1
        if self.mode == "fail":
            raise DataError(bad.reason, source=bad.source, line=bad.line)
        if self.report is not None:
            self.report(bad)
