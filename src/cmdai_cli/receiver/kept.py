"""What a receiver holds in memory: the last N messages, counts of all, and a query.

The `out` file keeps every message; this keeps the newest `keep` (the oldest are dropped
and counted) so that memory stays bounded however long `cmdai listen` runs. Each entry
is the message's encoded line plus the few fields the inspection API filters on, so a
query over 100,000 messages decodes only what it returns. Counts (by type, by event
name, by flag, rejected requests) cover everything since the start or the last reset.

Not thread-safe on its own: the receiver calls `add_batch` and `reject` under its lock,
and `rows()` copies under the same lock before a query runs without it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson

from cmdai_cli.segment.messages import flags_for

DUPLICATE = "duplicate messageId"


class Entry(NamedTuple):
    """One kept message: its encoded JSON, flags, when and where it arrived, and keys."""

    raw: bytes
    flags: tuple[str, ...]
    received_at: str
    path: str
    type: Any
    event: Any
    user_id: Any
    anonymous_id: Any

    def as_json(self) -> bytes:
        """The message as the inspection API and `listen --json` show it, encoded."""
        return row_json(self)


class Keyed(Protocol):
    """What a query looks at: a kept entry, or a message read back by `cmdai expect`."""

    @property
    def flags(self) -> tuple[str, ...]: ...
    @property
    def received_at(self) -> str: ...
    @property
    def type(self) -> Any: ...
    @property
    def event(self) -> Any: ...
    @property
    def user_id(self) -> Any: ...
    @property
    def anonymous_id(self) -> Any: ...


K = TypeVar("K", bound=Keyed)


# An `Entry` as kept: raw, flags, received_at, path, type, event, userId, anonymousId.
Row = tuple[bytes, tuple[str, ...], str, str, Any, Any, Any, Any]
_TYPE, _EVENT, _USER_ID, _ANONYMOUS_ID = 4, 5, 6, 7


def row_json(row: Row) -> bytes:
    """A kept row as the inspection API and `listen --json` show a message, encoded."""
    head = orjson.dumps({"receivedAt": row[2], "path": row[3], "flags": row[1]})
    return head[:-1] + b',"message":' + row[0] + b"}"


def _text(value: Any) -> str | None:
    """How a query string compares with a message field: ids may be numbers."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


@dataclass
class Query:
    """A filter over kept messages; within one field the values are alternatives.

    `since` is a `receivedAt` stamp (inclusive); `limit` keeps the newest matches.
    """

    types: Sequence[str] = ()
    events: Sequence[str] = ()
    user_ids: Sequence[str] = ()
    anonymous_ids: Sequence[str] = ()
    flagged: bool | None = None
    since: str | None = None
    limit: int | None = None

    def matches(self, entry: Keyed) -> bool:
        if self.types and _text(entry.type) not in self.types:
            return False
        if self.events and _text(entry.event) not in self.events:
            return False
        if self.user_ids and _text(entry.user_id) not in self.user_ids:
            return False
        if self.anonymous_ids and _text(entry.anonymous_id) not in self.anonymous_ids:
            return False
        if self.flagged is not None and bool(entry.flags) != self.flagged:
            return False
        return self.since is None or entry.received_at >= self.since

    def select(self, entries: Iterable[K]) -> list[K]:
        """The matching entries, oldest first; with `limit`, only the newest `limit`."""
        return self._newest([entry for entry in entries if self.matches(entry)])

    def select_rows(self, rows: list[Row]) -> list[Row]:
        """`select` over kept rows, one pass per filter given, with no call per row.

        What `GET /cmdai/messages` runs over up to 100,000 rows on every look of a
        polling `cmdai expect`; `matches` would cost a call (and an `Entry`) per row.
        """
        for index, wanted in (
            (_TYPE, self.types),
            (_EVENT, self.events),
            (_USER_ID, self.user_ids),
            (_ANONYMOUS_ID, self.anonymous_ids),
        ):
            if wanted:
                allowed = set(wanted)
                rows = [
                    row
                    for row in rows
                    if (row[index] if type(row[index]) is str else _text(row[index])) in allowed
                ]
        if self.flagged is not None:
            flagged = self.flagged
            rows = [row for row in rows if bool(row[1]) is flagged]  # flags
        if self.since is not None:
            since = self.since
            rows = [row for row in rows if row[2] >= since]  # receivedAt
        return self._newest(rows)

    def _newest(self, found: list[Any]) -> list[Any]:
        if self.limit is not None:
            found = found[len(found) - self.limit :] if self.limit else []
        return found


def stamp(value: str) -> str:
    """An ISO-8601 time as `receivedAt` writes it (UTC, milliseconds, Z), for comparing.

    Raises ValueError for text that is not a time.
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:
        # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC: no datetime holds it.
        raise ValueError(f"{value!r} is past the times that can be compared") from None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Kept:
    """The newest `keep` messages and counts of everything since the start or a reset."""

    keep: int = 100_000
    remember_ids: int = 100_000
    received: int = 0
    dropped: int = 0
    flagged: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_event: Counter[str] = field(default_factory=Counter)
    by_flag: Counter[str] = field(default_factory=Counter)
    rejected: Counter[int] = field(default_factory=Counter)
    since: str | None = None

    def __post_init__(self) -> None:
        # Plain tuples, not `Entry`: the collector stops tracking a tuple of strings and
        # bytes once it has looked at it, but never a tuple subclass, so 100,000 kept
        # namedtuples would be walked by every full collection while messages arrive.
        self._entries: deque[Row] = deque(maxlen=self.keep)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add_batch(
        self,
        messages: Sequence[tuple[Mapping[str, Any], bytes, tuple[str, ...]]],
        received_at: str,
        path: str,
    ) -> list[tuple[str, ...]]:
        """Keep one request's accepted messages; their flags, a repeated messageId's included.

        Runs for every message the receiver takes, under its lock: one call per request,
        names looked up once, and nothing done twice.
        """
        entries = self._entries
        overflow = len(entries) + len(messages) - self.keep
        if overflow > 0:
            self.dropped += min(overflow, len(messages))
        seen = self._seen
        remember = self.remember_ids
        by_type, by_event, by_flag = self.by_type, self.by_event, self.by_flag
        append = entries.append
        found: list[tuple[str, ...]] = []
        flagged = 0
        for message, raw, request_flags in messages:
            get = message.get
            flags = flags_for(message) + request_flags
            message_id = get("messageId")
            if type(message_id) is str:
                if message_id in seen:
                    flags += (DUPLICATE,)
                else:
                    seen[message_id] = None
                    if len(seen) > remember:
                        seen.popitem(last=False)
            kind = get("type")
            event = get("event")
            append((raw, flags, received_at, path, kind, event, get("userId"), get("anonymousId")))
            by_type[kind if type(kind) is str else (_text(kind) or "(none)")] += 1
            if kind == "track" and type(event) is str:
                by_event[event] += 1
            if flags:
                flagged += 1
                by_flag.update(flags)
            found.append(flags)
        self.received += len(messages)
        self.flagged += flagged
        return found

    def reject(self, status: int) -> None:
        self.rejected[status] += 1

    def rows(self) -> list[Row]:
        """A copy of the kept rows, oldest first."""
        return list(self._entries)

    def entries(self) -> list[Entry]:
        """A copy of the kept entries, oldest first."""
        new = tuple.__new__
        return [new(Entry, row) for row in self._entries]

    def reset(self, now: str) -> int:
        """Forget every message and count (the `out` file is not touched); how many were kept."""
        forgotten = len(self._entries)
        self._entries.clear()
        self._seen.clear()
        self.received = self.dropped = self.flagged = 0
        for counter in (self.by_type, self.by_event, self.by_flag, self.rejected):
            counter.clear()
        self.since = now
        return forgotten

    def summary(self) -> dict[str, Any]:
        """What `GET /cmdai/summary` answers."""
        return {
            "received": self.received,
            "kept": len(self._entries),
            "keep": self.keep,
            "droppedByKeep": self.dropped,
            "flagged": self.flagged,
            "byType": dict(sorted(self.by_type.items())),
            "byEvent": dict(sorted(self.by_event.items())),
            "byFlag": dict(sorted(self.by_flag.items())),
            "rejected": {str(status): n for status, n in sorted(self.rejected.items())},
            "since": self.since,
        }
