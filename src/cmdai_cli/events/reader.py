"""Reading streams of Segment events: the one reader, used by map-payload and replay.

Each input may be NDJSON (the fast path, and what `cmdai listen --out` writes), a JSON
array, one object (pretty-printed or not), or JSON values one after another (those go
to `events.scan`). A record that cannot be an event (not JSON, invalid UTF-8, not an
object, over a size limit, nested too deeply) goes to the `ErrorPolicy`; with `fail`
it raises only after every earlier event has been handed out. Bad records use up an
index, so indexes always match positions in the input.

Records are read as JavaScript's `JSON.parse` reads them (`cmdai_cli.js_json`): orjson
reads every record it can; the few it refuses that JavaScript reads (lone surrogates,
numbers past the double range, nesting past 1,024 levels) take the slow road, and a
record whose bytes could spell a `__proto__` key is checked for one (`ProtoKeys`).

Tolerated without complaint: a UTF-8 byte-order mark at the start of an input, CRLF
line ends, blank lines. Memory stays bounded whatever the input: it is read in chunks
of at most 256 KiB (after gunzip too), and a record larger than `max_record_bytes` is
a bad record found without holding more than about that much of it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import orjson

from cmdai_cli.events.inputs import Input, Truncated, chunks
from cmdai_cli.events.records import (
    DEFAULT_MAX_RECORD_BYTES,
    BadRecord,
    ErrorPolicy,
    Event,
    mark_proto_keys,
    too_large,
)
from cmdai_cli.events.scan import prepend, reason_of, scan
from cmdai_cli.js_json import NOT_JSON, compact, slow_loads
from cmdai_cli.segment.messages import MAX_MESSAGE_BYTES

__all__ = ["read_batches"]

_BOM = b"\xef\xbb\xbf"
# Building the tuple directly skips the NamedTuple constructor's argument handling:
# about 100 ns instead of 160 ns an event (timeit, Python 3.11).
_new_event = cast(Callable[[type, tuple[Any, ...]], Event], tuple.__new__)


def read_batches(
    inputs: Sequence[Input],
    *,
    on_error: ErrorPolicy | None = None,
    max_event_bytes: int | None = MAX_MESSAGE_BYTES,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[list[Event]]:
    """Every event of every input, in order, in lists (about one per chunk read).

    An event over `max_event_bytes` (Segment's per-message limit by default, measured
    compact; None: no limit) is a bad record, and so is a record over `max_record_bytes`
    as it stands in the input. With a `fail` policy the events before a bad record are
    yielded before it raises.
    """
    policy = on_error or ErrorPolicy()
    counter = [0]
    for item in inputs:
        stream = item.open()
        try:
            reader = _Reader(item.name, policy, max_event_bytes, max_record_bytes, counter)
            yield from reader.run(chunks(stream))
        finally:
            if not item.is_stdin:
                stream.close()


class _Reader:
    """One input's records: the line fast path, or the value scanner when it must."""

    def __init__(
        self,
        name: str,
        policy: ErrorPolicy,
        max_bytes: int | None,
        max_record: int,
        counter: list[int],
    ) -> None:
        self.name = name
        self.policy = policy
        self.max_bytes = max_bytes
        self.max_record = max_record
        self.skipped_lines = 0  # blank lines before the first record
        self.counter = counter  # shared across inputs: the next index
        self.batch: list[Event] = []

    # -- records ------------------------------------------------------------

    def bad(self, line: int | None, reason: str) -> Iterator[list[Event]]:
        """Hand out what came before, then let the policy decide (it may raise)."""
        if self.batch:
            yield self.batch
            self.batch = []
        index = self.counter[0]
        self.counter[0] = index + 1
        self.policy(BadRecord(index, self.name, line, reason))

    def value(self, value: Any, line: int, size: int, raw: bytes) -> Iterator[list[Event]]:
        """A parsed top-level value: an event, or an array of them, or a bad record.

        `raw` is the value's text (or an array's that holds it).
        """
        if type(value) is dict:
            value = mark_proto_keys(value, raw)
            if self.max_bytes is not None and size > self.max_bytes:
                yield from self.oversize(value, line)
                return
            index = self.counter[0]
            self.counter[0] = index + 1
            self.batch.append(_new_event(Event, (index, self.name, line, value, size)))
        elif type(value) is list:
            for item in value:
                if type(item) is dict:
                    yield from self.value(item, line, len(compact(item)), raw)
                else:
                    yield from self.bad(line, "array item is not a JSON object")
        else:
            yield from self.bad(line, "not a JSON object")

    def oversize(self, value: dict[str, Any], line: int) -> Iterator[list[Event]]:
        # Input bytes may hold whitespace Segment never sees: measure the compact form.
        assert self.max_bytes is not None
        size = len(compact(value))
        if size > self.max_bytes:
            yield from self.bad(
                line,
                f"event is {size} bytes, over Segment's {self.max_bytes // 1024} KB limit "
                "(Segment would refuse it)",
            )
            return
        index = self.counter[0]
        self.counter[0] = index + 1
        self.batch.append(_new_event(Event, (index, self.name, line, value, size)))

    # -- layout -------------------------------------------------------------

    def run(self, chunks: Iterator[bytes]) -> Iterator[list[Event]]:
        try:
            # Enough of the start to see the first record's line, and so the layout.
            head = b""
            for chunk in chunks:
                head += chunk
                content = head.removeprefix(_BOM).lstrip()
                if (content and b"\n" in content) or len(head) > self.max_record:
                    break
                if not content:
                    head = b""  # leading blank lines: count them, keep nothing
                    self.skipped_lines += chunk.count(b"\n")
            head = head.removeprefix(_BOM)
            body = prepend(head, chunks)
            if self._looks_like_lines(head):
                yield from self.lines(body)
            else:
                yield from scan(self, body, 1 + self.skipped_lines, limit=self.max_record)
        except Truncated as exc:
            yield from self.bad(None, str(exc))
        except zlib.error as exc:
            yield from self.bad(None, f"cannot gunzip: {exc}")
        if self.batch:
            yield self.batch
            self.batch = []

    def _looks_like_lines(self, head: bytes) -> bool:
        stripped = head.lstrip()
        if stripped.startswith(b"["):
            return False
        first = stripped.split(b"\n", 1)[0]
        if len(first) > self.max_record:
            # Too long to try: the line reader reports it as a bad record.
            return True
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError as exc:
            return slow_loads(first, exc) is not NOT_JSON
        return True

    # -- NDJSON: split lines ourselves and parse each ---------------------

    def lines(self, chunks: Iterator[bytes]) -> Iterator[list[Event]]:
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        max_bytes = self.max_bytes if self.max_bytes is not None else self.max_record
        max_record = self.max_record
        counter = self.counter
        name = self.name
        number = self.skipped_lines
        pending = b""
        skipping = False  # inside an over-long line being thrown away
        for chunk in chunks:
            if skipping:
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue
                chunk = chunk[cut + 1 :]
                skipping = False
            data = pending + chunk if pending else chunk
            if data.isspace():
                # Blank lines only (a gzip bomb of newlines is one): count, keep nothing.
                number += data.count(b"\n")
                pending = b""
                continue
            parts = data.split(b"\n")
            pending = parts.pop()
            batch = self.batch
            # A `__proto__` key is spelt out, or escaped with a backslash: one search of
            # the chunk for each (in C, about 0.3 ns a byte) spares its records the check.
            suspect = b"__proto__" in data or b"\\" in data
            for at, raw in enumerate(parts):
                number += 1
                if len(raw) > max_record:
                    if raw.lstrip().startswith(b"["):
                        # A JSON array on one line: its items are the records.
                        rest = b"\n".join(parts[at:]) + b"\n" + pending
                        yield from scan(
                            self, prepend(rest, chunks), first_line=number, limit=max_record
                        )
                        return
                    yield from self.bad(number, too_large(max_record))
                    batch = self.batch
                    continue
                try:
                    value = loads(raw)
                except decode_error as exc:
                    value = slow_loads(raw, exc)
                    if value is not NOT_JSON:
                        yield from self.value(value, number, len(raw.rstrip(b"\r")), raw)
                        batch = self.batch
                        continue
                    stripped = raw.strip()
                    if not stripped:
                        continue
                    if stripped in (b"{", b"["):
                        # A pretty-printed value starts here: scan the rest instead.
                        rest = b"\n".join(parts[at:]) + b"\n" + pending
                        yield from scan(
                            self, prepend(rest, chunks), first_line=number, limit=max_record
                        )
                        return
                    if str(exc).startswith("unexpected content after document"):
                        # Several values on one line.
                        yield from scan(self, iter([raw]), first_line=number, limit=max_record)
                    else:
                        yield from self.bad(number, reason_of(exc))
                    batch = self.batch
                    continue
                if (
                    type(value) is dict
                    and len(raw) <= max_bytes
                    and not (suspect and (b"__proto__" in raw or b"\\u00" in raw))
                ):
                    index = counter[0]
                    counter[0] = index + 1
                    batch.append(_new_event(Event, (index, name, number, value, len(raw))))
                else:
                    yield from self.value(value, number, len(raw.rstrip(b"\r")), raw)
                    batch = self.batch
            if len(self.batch) >= 1024:
                yield self.batch
                self.batch = []
            if len(pending) > max_record:
                start = pending.lstrip()
                if not start:
                    pending = b""  # blank so far, however long
                elif start.startswith(b"["):
                    # A JSON array on one line: its items are the records.
                    yield from scan(
                        self, prepend(pending, chunks), first_line=number + 1, limit=max_record
                    )
                    return
                else:
                    number += 1
                    yield from self.bad(number, too_large(max_record))
                    pending = b""
                    skipping = True
        if pending and not skipping:
            number += 1
            try:
                value = loads(pending)
            except decode_error as exc:
                value = slow_loads(pending, exc)
                if value is NOT_JSON:
                    if pending.strip():
                        yield from self.bad(number, reason_of(exc))
                    return
            yield from self.value(value, number, len(pending.rstrip(b"\r")), pending)
