"""What a receiver holds: the messages it accepted, its counts, and the `out` file.

`Store` is the one owner of that state, thread-safe: the server's loop writes each
request's messages to the `out` file before they are acknowledged and counts requests;
the work after the answer (`accept`) keeps and flags the messages and hands them to
`on_batch`; readers (the inspection API, `wait_for`, the final counts) see every
request answered before they asked. Write keys never reach it (see `protocol`).

The `out` file keeps every message; memory keeps the newest `keep` (`Kept`: the oldest
are dropped and counted) so that it stays bounded however long `cmdai listen` runs.
Each entry is the message's encoded line plus the few fields the inspection API filters
on, so a query over 100,000 messages (`Query`) decodes only what it returns. `Kept`'s
counts (by type, by event name, by flag, rejected requests) cover everything since the
start or the last reset; `Stats`, the whole run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol, TypeVar

import orjson

from cmdai_cli import outpaths
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver.protocol import now_stamp
from cmdai_cli.segment.messages import flags_for

# The flag of a message the --plan check could not finish.
NOT_CHECKED = "plan: not checked (the check failed)"
log = logging.getLogger("cmdai")

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


class Linked(Protocol):
    """What learns of a request's kept messages (a forwarded request)."""

    def kept(self, received: list[Received] | None) -> None:
        """The request's messages as kept, with every flag (None: they could not be)."""


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
    """The newest `keep` messages and counts of everything since the start or a reset.

    Not thread-safe on its own: the `Store` calls it under its lock, and `rows()` copies
    under the same lock before a query runs without it.
    """

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

    def numbered(self) -> tuple[int, list[Row]]:
        """The number of the oldest kept message (counted from the start or the last
        reset), and a copy of the kept rows, oldest first: a message keeps its number
        while it is kept, so a page can ask for it again."""
        return self.received - len(self._entries), list(self._entries)

    def tail(self, limit: int) -> tuple[int, list[Row]]:
        """How many messages arrived (since the start or the last reset), and the newest
        `limit` kept rows, newest first."""
        entries = self._entries
        newest = [entries[-1 - n] for n in range(min(limit, len(entries)))]
        return self.received, newest

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


# A request's accepted messages: each decoded, encoded (one line of `out`), and the
# flags the request itself earned (see `protocol.parse_encoded`).
Parsed = list[tuple[dict[str, Any], bytes, tuple[str, ...]]]


@dataclass(slots=True)
class Received:
    """One accepted message, as stored: write key removed, batch context merged.

    `raw` is the message as one compact JSON line (no newline), as written to `out`.
    """

    message: dict[str, Any]
    flags: tuple[str, ...]
    received_at: str
    path: str
    raw: bytes = field(default=b"", repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "receivedAt": self.received_at,
            "path": self.path,
            "flags": list(self.flags),
            "message": self.message,
        }

    def as_json_line(self) -> bytes:
        """`as_dict()` as one JSON line, reusing the already encoded message."""
        raw = self.raw or orjson.dumps(self.message)
        head = orjson.dumps(
            {"receivedAt": self.received_at, "path": self.path, "flags": list(self.flags)}
        )
        return head[:-1] + b',"message":' + raw + b"}\n"


@dataclass
class Stats:
    """Counts since the receiver started (a reset does not touch them)."""

    requests: int = 0
    accepted: int = 0
    flagged: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    dropped_connections: int = 0
    callback_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "flagged": self.flagged,
            "rejected": {str(k): v for k, v in sorted(self.rejected.items())},
            "droppedConnections": self.dropped_connections,
        }


class Store:
    """The messages a receiver accepted (`Kept`), its counts (`Stats`), its `out` file.

    `on_batch` is called with each request's messages after they are kept, and `check`
    gives more flags for each (`listen --plan`: a tracking plan's); errors in `on_batch`
    are counted, never fatal.
    """

    def __init__(
        self,
        *,
        keep: int,
        remember_ids: int,
        out: Path | None = None,
        on_batch: Callable[[list[Received]], Any] | None = None,
        check: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None,
    ) -> None:
        self.out_path = out
        self.on_batch = on_batch
        self.check = check
        # Kept encoded: thousands of retained dicts would make every GC pass slower.
        self.kept = Kept(keep=keep, remember_ids=remember_ids)
        self._stats = Stats()
        # Requests answered whose bookkeeping (flags, list, callbacks) is still running,
        # by ticket: a reader waits only for those answered before it asked.
        self._settling: set[int] = set()
        self._tickets = 0
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._out: IO[bytes] | None = None
        # `listen --forward-to`'s counts, for the summary.
        self.forward_summary: Callable[[], dict[str, Any]] | None = None

    def open(self) -> None:
        """Open the `out` file for appending (UsageError when it cannot be)."""
        if self.out_path is not None:
            try:
                # Unbuffered: a failed write is cut back at once to the last whole line.
                self._out = outpaths.open_append(self.out_path)
            except OSError as exc:
                where = self.out_path
                raise UsageError(f"{where}: cannot open for writing: {exc.strerror}") from None

    def close(self) -> None:
        with self._out_lock:
            if self._out is not None:
                self._out.close()
                self._out = None

    # ------------------------------------------------------------------ taking in

    def count_request(self) -> None:
        with self._lock:
            self._stats.requests += 1

    def count_rejected(self, status: int) -> None:
        with self._lock:
            self._stats.rejected[status] = self._stats.rejected.get(status, 0) + 1
            self.kept.reject(status)

    def count_drop(self) -> None:
        with self._lock:
            self._stats.dropped_connections += 1

    def write(self, messages: Parsed) -> None:
        """Append the messages to `out`: before they are acknowledged (OSError if not).

        An empty batch (doctor's probe, a flush with nothing queued) writes nothing: the
        file is NDJSON, one message a line, for any other tool to read."""
        if self._out is None or not messages:
            return
        data = b"\n".join(raw for _, raw, _ in messages) + b"\n"
        with self._out_lock:
            if self._out is not None:
                outpaths.append_whole(self._out, data)

    def accept(
        self, path: str, messages: Parsed, now: str, linked: Linked | None = None
    ) -> Callable[[], None]:
        """The bookkeeping of acknowledged messages, to run after their answer.

        Readers wait for it from now on, so that what a client saw acknowledged is
        always visible to them. `linked` (a forwarded request) gets the kept messages,
        with all their flags, as `received`.
        """
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
            self._settling.add(ticket)
        return lambda: self._keep(path, messages, now, ticket, linked)

    def _keep(
        self, path: str, messages: Parsed, now: str, ticket: int, linked: Linked | None = None
    ) -> None:
        accepted: list[Received] = []
        try:
            check = self.check
            if check is not None:
                messages = [(m, raw, flags + _checked(check, m)) for m, raw, flags in messages]
            with self._lock:
                all_flags = self.kept.add_batch(messages, now, path)
                if self.on_batch is not None or linked is not None:
                    accepted = [
                        Received(message, flags, now, path, raw)
                        for (message, raw, _), flags in zip(messages, all_flags, strict=True)
                    ]
                self._stats.flagged += sum(1 for flags in all_flags if flags)
                self._stats.accepted += len(messages)
            if linked is not None:
                linked.kept(accepted)
                linked = None
            if accepted and self.on_batch is not None:
                try:
                    self.on_batch(accepted)
                except Exception:
                    with self._lock:
                        self._stats.callback_errors += 1
                    log.debug("a receiver callback failed", exc_info=True)
        finally:
            if linked is not None:  # keeping failed: what it was told is all there is
                linked.kept(None)
            with self._lock:
                self._settling.discard(ticket)
                self._arrived.notify_all()

    # ------------------------------------------------------------------ reading

    def _settle(self) -> None:
        # Readers wait for the bookkeeping of requests answered before they asked; those
        # answered later are not waited for, so a busy intake never holds a reader up.
        pending = set(self._settling)
        if pending:
            self._arrived.wait_for(lambda: not (pending & self._settling), timeout=5)

    @property
    def stats(self) -> Stats:
        """Counters, including every request answered so far."""
        with self._arrived:
            self._settle()
            return self._stats

    def messages(self) -> list[Received]:
        """The kept messages, oldest first (all answered requests' included)."""
        return [_received(entry) for entry in self.entries()]

    def entries(self) -> list[Entry]:
        """The kept messages, encoded, oldest first (all answered requests' included)."""
        with self._arrived:
            self._settle()
            return self.kept.entries()

    def rows(self) -> list[Row]:
        """The kept rows, oldest first (all answered requests' included): for queries."""
        with self._arrived:
            self._settle()
            return self.kept.rows()

    def numbered_rows(self) -> tuple[int, list[Row]]:
        """`Kept.numbered`, once every request answered before is kept."""
        with self._arrived:
            self._settle()
            return self.kept.numbered()

    def tail(self, limit: int) -> tuple[int, list[Row]]:
        """`Kept.tail` as it is now, without waiting: the event stream asks it on the
        server's loop, which must never wait on the work after answers."""
        with self._lock:
            return self.kept.tail(limit)

    def summary(self) -> dict[str, Any]:
        """Counts since the start or the last reset, as `GET /cmdai/summary` gives them."""
        with self._arrived:
            self._settle()
            summary = self.kept.summary()
        if self.forward_summary is not None:
            summary["forward"] = self.forward_summary()
        return summary

    def forget(self) -> int:
        """Forget the kept messages and their counts (the `out` file stays); how many."""
        with self._arrived:
            self._settle()
            return self.kept.reset(now_stamp())

    def wait_for(
        self, count: int = 1, *, message_id: str | None = None, timeout: float = 5.0
    ) -> list[Received]:
        """Wait until `count` messages (or the one with `message_id`) have arrived.

        Returns the matching messages so far, which may be fewer on timeout.
        """
        deadline = time.monotonic() + timeout
        needle = None if message_id is None else orjson.dumps({"messageId": message_id})[1:-1]

        def matching() -> list[Received]:
            kept = [
                _received(entry)
                for entry in self.kept.entries()
                if needle is None or needle in entry.raw
            ]
            if message_id is None:
                return kept
            return [r for r in kept if r.message.get("messageId") == message_id]

        with self._arrived:
            found = matching()
            while len(found) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
                found = matching()
            return found


def _checked(
    check: Callable[[Mapping[str, Any]], tuple[str, ...]], message: dict[str, Any]
) -> tuple[str, ...]:
    """The flags `check` gives a message; a check that fails flags it, and it is still kept:
    it was acknowledged already."""
    try:
        return check(message)
    except Exception:
        log.debug("a message could not be checked", exc_info=True)
        return (NOT_CHECKED,)


def _received(entry: Entry) -> Received:
    return Received(orjson.loads(entry.raw), entry.flags, entry.received_at, entry.path, entry.raw)
