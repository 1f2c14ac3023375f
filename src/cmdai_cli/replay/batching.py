"""Grouping events into requests within the target's limits, and measuring them.

Every batch answers for a contiguous range of input positions [start, end): the events
it carries, and every record between them that was skipped or rejected. Batches are cut
one after another, so their ranges tile the input and the checkpoint can record progress
as ranges, whatever order the answers come back in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from cmdai_cli.segment.messages import MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, SEND_BATCH_BYTES

MAX_BATCH_BYTES = SEND_BATCH_BYTES
# `{"batch": [...], "sentAt": "...", "writeKey": "..."}` around the messages; write
# keys are at most 200 characters.
ENVELOPE_BYTES = 512


class Pending(NamedTuple):
    """An event on its way: its input position and place, and the event itself."""

    position: int
    source: str
    line: int | None
    event: dict[str, Any]


@dataclass
class Batch:
    """One request's worth: what is sent (`items`) and the events behind them."""

    start: int
    end: int
    items: list[Any] = field(default_factory=list)
    events: list[Pending] = field(default_factory=list)
    rejected: int = 0  # records of the range that went to the reject file
    body: bytearray | None = None  # the request body, when built as the batch grew

    def __len__(self) -> int:
        return len(self.events)


_dumps = orjson.dumps


def _size(compact: bytes, value: Any) -> int:
    """At least the length of `json.dumps(value)`, the encoding the Segment library sends,
    from `compact`, orjson's encoding of `value`.

    Exact for non-ASCII content; otherwise an upper bound, several times cheaper than
    encoding twice: the library adds a space after every `:` and `,`, writes `1e-07`
    where orjson writes `1e-7` (every `-` is counted for that digit), and escapes DEL in
    six bytes.
    """
    if not compact.isascii():
        return exact_size(value)
    n = len(compact)
    # One pass for all three characters; counting each apart costs three times as much.
    size = n + n - len(compact.translate(None, b":,-"))
    if 0x7F in compact:
        size += 5 * compact.count(b"\x7f")
    return size


def exact_size(value: Any) -> int:
    """The length of the bytes the Segment library sends for `value`."""
    return len(json.dumps(value).encode("utf-8"))


def segment_encoding(message: Any) -> tuple[int, bytes]:
    """The message's size as sent, exact when it is near the 32 KB limit, and its
    compact JSON: what crosses to the sending process, so it is encoded only once."""
    compact = _dumps(message)
    size = _size(compact, message)
    if size > _NEAR_LIMIT:
        size = exact_size(message)
    return size, compact


_NEAR_LIMIT = MAX_MESSAGE_BYTES - 64


class Builder:
    """Collects items until the next would pass `max_items` or `max_bytes`."""

    def __init__(self, start: int, max_items: int, max_bytes: int | None = None) -> None:
        self.start = start
        self.max_items = max(1, max_items)
        self.max_bytes = max_bytes
        self.items: list[Any] = []
        self.events: list[Pending] = []
        self.bytes = 0

    def fits(self, size: int) -> bool:
        if not self.events:
            return True
        if len(self.events) >= self.max_items:
            return False
        return self.max_bytes is None or self.bytes + 2 + size <= self.max_bytes

    def add(self, pending: Pending, item: Any, size: int = 0) -> bool:
        """Add an item that `fits`; whether the batch is now full."""
        self.bytes += size + (2 if self.events else 0)
        self.items.append(item)
        self.events.append(pending)
        return self.full

    @property
    def full(self) -> bool:
        return len(self.events) >= self.max_items

    def take(self, end: int) -> Batch:
        """The batch so far, answering for positions up to `end`; starts the next one."""
        batch = Batch(self.start, end, self.items, self.events)
        self.start = end
        self.items, self.events, self.bytes = [], [], 0
        return batch


class BodyBuilder(Builder):
    """Writes each item, already encoded, into the batch's JSON array as it comes.

    The encoded items are not kept: a buffer per batch reuses its memory, where tens
    of thousands of small bytes objects alive at once would each take fresh pages.
    """

    def __init__(self, start: int, max_items: int, max_bytes: int | None = None) -> None:
        super().__init__(start, max_items, max_bytes)
        self.body = bytearray(b"[")

    def add(self, pending: Pending, item: bytes, size: int = 0) -> bool:
        events = self.events
        if events:
            self.bytes += size + 2
            self.body += b","
        else:
            self.bytes += size
        self.body += item
        events.append(pending)
        return len(events) >= self.max_items

    def take(self, end: int) -> Batch:
        body, self.body = self.body, bytearray(b"[")
        body += b"]"
        batch = super().take(end)
        batch.body = body
        return batch


def segment_builder(start: int, batch_size: int | None) -> BodyBuilder:
    count = min(batch_size or MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES)
    return BodyBuilder(start, count, MAX_BATCH_BYTES - ENVELOPE_BYTES)


class UserBuilder(Builder):
    """Merges user properties per user; full at `max_items` users.

    Within a batch a later event's value for a property wins, as it would have had the
    events been recorded one by one. The events are kept for the dead-letter file.
    """

    # A batch also closes after this many events per user slot, so that one very
    # active user cannot grow a batch without bound.
    EVENTS_PER_USER = 50

    def __init__(self, start: int, max_items: int) -> None:
        super().__init__(start, max_items)
        self.users: dict[str, dict[str, Any]] = {}

    def fits(self, size: int) -> bool:
        return not self.full

    def add(self, pending: Pending, item: tuple[str, dict[str, Any]], size: int = 0) -> bool:
        """Add `(user id, properties)`; whether the batch is now full."""
        user_id, properties = item
        merged = self.users.get(user_id)
        if merged is None:
            self.users[user_id] = dict(properties)
        else:
            merged.update(properties)
        self.events.append(pending)
        return self.full

    @property
    def full(self) -> bool:
        return (
            len(self.users) >= self.max_items
            or len(self.events) >= self.max_items * self.EVENTS_PER_USER
        )

    def take(self, end: int) -> Batch:
        self.items = [{"id": uid, "properties": props} for uid, props in self.users.items()]
        self.users = {}
        return super().take(end)
