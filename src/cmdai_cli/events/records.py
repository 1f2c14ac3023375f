"""What reading yields, and what a bad record does.

Every event comes out as an `Event` with its source name, 1-based line, 0-based index
across all inputs and its size in bytes. A record that cannot be an event becomes a
`BadRecord` passed to an `ErrorPolicy`: with `fail` it raises DataError (file, line,
reason); with `skip` it is reported and counted, and reading goes on.
"""

from __future__ import annotations

import re
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
    "ProtoKeys",
    "mark_proto_keys",
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


class ProtoKeys(dict[str, Any]):
    """An event holding an own `__proto__` key somewhere inside, as `JSON.parse` makes one.

    The value is the event as read; the type tells the mapping step, without a walk over
    every event, that mapping-kit's copies will drop those keys (see `mapping.kit`).
    """


# A key spelt with escapes (`"\\u005f_proto__"`) is `__proto__` to JSON.parse too.
_ESCAPED_PROTO = re.compile(rb'"(?:[_prot]|\\u00(?:5[fF]|7[024]|6[fF])){9}"')


def mark_proto_keys(value: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """`value` as `ProtoKeys` when it holds an own `__proto__` key, else as it is.

    `raw` is the record's text: only a record whose bytes could spell the key is walked.
    """
    if b"__proto__" not in raw and (b"\\u00" not in raw or not _ESCAPED_PROTO.search(raw)):
        return value
    # An explicit stack: records nest deeper than Python recurses.
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            if "__proto__" in item:
                return ProtoKeys(value)
            pending.extend(child for child in item.values() if type(child) in (dict, list))
        else:
            pending.extend(child for child in item if type(child) in (dict, list))
    return value
