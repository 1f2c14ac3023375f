"""Reading streams of Segment events: the one reader, used by map-payload and replay.

Each input may be NDJSON (the fast path, and what `cmdai listen --out` writes), a JSON
array, one object (pretty-printed or not), or JSON values one after another (those go
to `events.scan`). A record that cannot be an event (not JSON, invalid UTF-8, not an
object, over the size limit, nested too deeply) goes to the `ErrorPolicy`; with `fail`
it raises only after every earlier event has been handed out. Bad records use up an
index, so indexes always match positions in the input.

Tolerated without complaint: a UTF-8 byte-order mark at the start of an input, CRLF
line ends, blank lines. Memory stays constant: inputs are read in 256 KiB chunks and
only the event being parsed is held beyond that.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import orjson

from cmdai_cli.events.inputs import Input, Truncated, chunks
from cmdai_cli.events.records import MAX_RECORD_BYTES, BadRecord, ErrorPolicy, Event
from cmdai_cli.events.scan import prepend, reason_of, scan
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
) -> Iterator[list[Event]]:
    """Every event of every input, in order, in lists (about one per chunk read).

    An event over `max_event_bytes` (Segment's per-message limit by default; None: no
    limit) is a bad record. With a `fail` policy the events before a bad record are
    yielded before it raises.
    """
    policy = on_error or ErrorPolicy()
    counter = [0]
    for item in inputs:
        stream = item.open()
        try:
            yield from _Reader(item.name, policy, max_event_bytes, counter).run(chunks(stream))
        finally:
            if not item.is_stdin:
                stream.close()


class _Reader:
    """One input's records: the line fast path, or the value scanner when it must."""

    def __init__(
        self, name: str, policy: ErrorPolicy, max_bytes: int | None, counter: list[int]
    ) -> None:
        self.name = name
        self.policy = policy
        self.max_bytes = max_bytes
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

    def value(self, value: Any, line: int, size: int) -> Iterator[list[Event]]:
        """A parsed top-level value: an event, or an array of them, or a bad record."""
        if type(value) is dict:
            if self.max_bytes is not None and size > self.max_bytes:
                yield from self.oversize(value, line)
                return
            index = self.counter[0]
            self.counter[0] = index + 1
            self.batch.append(_new_event(Event, (index, self.name, line, value, size)))
        elif type(value) is list:
            for item in value:
                if type(item) is dict:
                    yield from self.value(item, line, len(orjson.dumps(item)))
                else:
                    yield from self.bad(line, "array item is not a JSON object")
        else:
            yield from self.bad(line, "not a JSON object")

    def oversize(self, value: dict[str, Any], line: int) -> Iterator[list[Event]]:
        # Input bytes may hold whitespace Segment never sees: measure the compact form.
        assert self.max_bytes is not None
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError:
            yield from self.bad(line, "nested too deeply")
            return
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
                if (content and b"\n" in content) or len(head) > MAX_RECORD_BYTES:
                    break
            head = head.removeprefix(_BOM)
            body = prepend(head, chunks)
            if self._looks_like_lines(head):
                yield from self.lines(body)
            else:
                yield from scan(self, body)
        except Truncated as exc:
            yield from self.bad(None, str(exc))
        except zlib.error as exc:
            yield from self.bad(None, f"cannot gunzip: {exc}")
        if self.batch:
            yield self.batch
            self.batch = []

    @staticmethod
    def _looks_like_lines(head: bytes) -> bool:
        stripped = head.lstrip()
        if stripped.startswith(b"["):
            return False
        first = stripped.split(b"\n", 1)[0]
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            return False
        return True

    # -- NDJSON: split lines ourselves and parse each ---------------------

    def lines(self, chunks: Iterator[bytes]) -> Iterator[list[Event]]:
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        max_bytes = self.max_bytes if self.max_bytes is not None else MAX_RECORD_BYTES
        counter = self.counter
        name = self.name
        number = 0
        pending = b""
        skipping = False  # inside an over-long line being thrown away
        for chunk in chunks:
            data = pending + chunk if pending else chunk
            parts = data.split(b"\n")
            pending = parts.pop()
            if skipping:
                if not parts:
                    pending = b""
                    continue
                parts[0] = b""
                skipping = False
            batch = self.batch
            for raw in parts:
                number += 1
                try:
                    value = loads(raw)
                except decode_error as exc:
                    stripped = raw.strip()
                    if not stripped:
                        continue
                    if stripped in (b"{", b"["):
                        # A pretty-printed value starts here: scan the rest instead.
                        rest = b"\n".join(parts[parts.index(raw) :]) + b"\n" + pending
                        yield from scan(self, prepend(rest, chunks), first_line=number)
                        return
                    if str(exc).startswith("unexpected content after document"):
                        # Several values on one line.
                        yield from scan(self, iter([raw]), first_line=number)
                    else:
                        yield from self.bad(number, reason_of(exc))
                    batch = self.batch
                    continue
                if type(value) is dict and len(raw) <= max_bytes:
                    index = counter[0]
                    counter[0] = index + 1
                    batch.append(_new_event(Event, (index, name, number, value, len(raw))))
                else:
                    yield from self.value(value, number, len(raw.rstrip(b"\r")))
                    batch = self.batch
            if len(self.batch) >= 1024:
                yield self.batch
                self.batch = []
            if len(pending) > MAX_RECORD_BYTES:
                yield from self.bad(number + 1, f"line longer than {MAX_RECORD_BYTES >> 20} MiB")
                number += 1
                pending = b""
                skipping = True
        if pending and not skipping:
            number += 1
            try:
                value = loads(pending)
            except decode_error as exc:
                if pending.strip():
                    yield from self.bad(number, reason_of(exc))
                return
            yield from self.value(value, number, len(pending.rstrip(b"\r")))
