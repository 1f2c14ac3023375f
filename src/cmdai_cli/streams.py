"""Reading streams of Segment events, and writing NDJSON: the one reader and writer.

Inputs are files, directories (their files, sorted by name, hidden ones skipped), glob
patterns, or `-` for stdin. Each input may be NDJSON (the fast path, and what
`cmdai listen --out` writes), a JSON array, one object (pretty-printed or not), or JSON
values one after another; gzip is recognised by its magic bytes, whatever the name.

Every event comes out as an `Event` with its source name, 1-based line, 0-based index
across all inputs and its size in bytes. A record that cannot be an event (not JSON,
invalid UTF-8, not an object, over the size limit, nested too deeply) becomes a
`BadRecord` passed to an `ErrorPolicy`: with `fail` it raises `DataError` (file, line,
reason) only after every earlier event has been handed out; with `skip` it is reported
and counted, and reading goes on. Bad records use up an index, so indexes always match
positions in the input.

Tolerated without complaint: a UTF-8 byte-order mark at the start of an input, CRLF
line ends, blank lines. Memory stays constant: inputs are read in 256 KiB chunks and
only the event being parsed is held beyond that.
"""

from __future__ import annotations

import gc
import glob
import os
import re
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, cast

import orjson

from cmdai_cli.errors import DataError

__all__ = [
    "BadRecord",
    "ErrorPolicy",
    "Event",
    "Input",
    "JsonArrayWriter",
    "NdjsonWriter",
    "expand_inputs",
    "paused_gc",
    "read_batches",
    "read_events",
]

OnError = Literal["fail", "skip"]

CHUNK_BYTES = 1 << 18  # big enough to amortise, small enough to stay in cache
MAX_RECORD_BYTES = 64 << 20  # one record larger than this is refused, not buffered
DEFAULT_MAX_EVENT_BYTES = 32 * 1024  # Segment's per-message limit
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_GLOB_CHARS = re.compile(r"[*?\[]")


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
    """What happens to a bad record: `fail` raises DataError, `skip` reports and counts."""

    mode: OnError = "fail"
    report: Callable[[BadRecord], None] | None = None
    count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def __call__(self, bad: BadRecord) -> None:
        self.count += 1
        self.reasons[bad.reason] += 1
        if self.mode == "fail":
            raise DataError(bad.reason, source=bad.source, line=bad.line)
        if self.report is not None:
            self.report(bad)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Input:
    """One input: a file path, or stdin when `path` is None."""

    name: str
    path: Path | None = None

    def open(self) -> IO[bytes]:
        if self.path is None:
            return sys.stdin.buffer
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror}", source=self.name) from None


STDIN = Input("<stdin>")


def expand_inputs(specs: Sequence[str]) -> list[Input]:
    """Files, directories, globs and `-` as a list of inputs; no specs means stdin.

    Raises DataError for a path that does not exist or a glob that matches nothing,
    before anything is read.
    """
    if not specs:
        return [STDIN]
    inputs: list[Input] = []
    for spec in specs:
        if spec == "-":
            inputs.append(STDIN)
            continue
        path = Path(spec)
        if path.is_dir():
            inputs.extend(
                Input(str(child), child)
                for child in sorted(path.iterdir())
                if child.is_file() and not child.name.startswith(".")
            )
        elif path.exists():
            inputs.append(Input(spec, path))
        elif _GLOB_CHARS.search(spec):
            matches = sorted(m for m in glob.glob(spec, recursive=True) if os.path.isfile(m))
            if not matches:
                raise DataError("no file matches this pattern", source=spec)
            inputs.extend(Input(m, Path(m)) for m in matches)
        else:
            raise DataError("no such file or directory", source=spec)
    return inputs


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """The bytes of `stream` in large chunks, gunzipped when it starts as gzip."""
    first = stream.read(max(CHUNK_BYTES, len(_GZIP_MAGIC)))
    if not first.startswith(_GZIP_MAGIC):
        while first:
            yield first
            first = stream.read(CHUNK_BYTES)
        return
    pending = first
    inflater = zlib.decompressobj(wbits=31)
    while pending:
        data = inflater.decompress(pending)
        if data:
            yield data
        # Concatenated gzip members (as `cat a.gz b.gz` makes) are one stream.
        while inflater.eof and inflater.unused_data:
            rest = inflater.unused_data
            inflater = zlib.decompressobj(wbits=31)
            data = inflater.decompress(rest)
            if data:
                yield data
        pending = stream.read(CHUNK_BYTES)
    tail = inflater.flush()
    if tail:
        yield tail
    if not inflater.eof:
        raise _Truncated("gzip data ends early (truncated file)")


class _Truncated(Exception):
    pass


# ---------------------------------------------------------------- reading


def read_events(
    specs: Sequence[str] | Sequence[Input],
    *,
    on_error: ErrorPolicy | None = None,
    max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
) -> Iterator[Event]:
    """Every event of every input, in order; see the module docstring."""
    for batch in read_batches(specs, on_error=on_error, max_event_bytes=max_event_bytes):
        yield from batch


def read_batches(
    specs: Sequence[str] | Sequence[Input],
    *,
    on_error: ErrorPolicy | None = None,
    max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
) -> Iterator[list[Event]]:
    """Events in lists (about one per chunk read): the same as `read_events`, faster.

    With a `fail` policy the events before a bad record are yielded before it raises.
    """
    policy = on_error or ErrorPolicy()
    inputs = (
        [s for s in specs if isinstance(s, Input)]
        if specs and isinstance(specs[0], Input)
        else expand_inputs(cast(Sequence[str], specs))
    )
    counter = [0]
    for item in inputs:
        stream = item.open()
        try:
            yield from _Reader(item.name, policy, max_event_bytes, counter).run(_chunks(stream))
        finally:
            if item.path is not None:
                stream.close()


def _reason(exc: Exception) -> str:
    text = str(exc)
    # orjson appends its own position; the line is reported separately.
    text = re.sub(r": line \d+ column \d+ \(char \d+\)$", "", text)
    if text.startswith("str is not valid UTF-8"):
        return "invalid UTF-8"
    if text.startswith("depth limit exceeded"):
        return "nested too deeply (over 1024 levels)"
    return f"not valid JSON ({text})"


_new_event = cast(Callable[[type, tuple[Any, ...]], Event], tuple.__new__)
_STRUCTURAL = re.compile(rb'[{}\[\]"]')
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(rb'[^\s,\[\]{}"]+')
_SPACE = re.compile(rb"[ \t\r\n]*")


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
            body = _prepend(head, chunks)
            if self._looks_like_lines(head):
                yield from self.lines(body)
            else:
                yield from self.scan(body)
        except _Truncated as exc:
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
                        yield from self.scan(_prepend(rest, chunks), first_line=number)
                        return
                    if str(exc).startswith("unexpected content after document"):
                        # Several values on one line.
                        yield from self.scan(iter([raw]), first_line=number)
                    else:
                        yield from self.bad(number, _reason(exc))
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
                    yield from self.bad(number, _reason(exc))
                return
            yield from self.value(value, number, len(pending.rstrip(b"\r")))

    # -- anything else: find where each JSON value ends ---------------------

    def scan(self, chunks: Iterator[bytes], first_line: int = 1) -> Iterator[list[Event]]:
        """JSON values one after another; a top-level array's items are the records."""
        buf = b""
        pos = 0
        line = first_line  # the line of `pos`
        in_array = False
        want_comma = False
        source = iter(chunks)
        eof = False

        def more() -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            chunk = next(source, None)
            if chunk is None:
                eof = True
                return False
            buf = buf[pos:] + chunk
            pos = 0
            return True

        def advance(to: int) -> None:
            nonlocal pos, line
            line += buf.count(b"\n", pos, to)
            pos = to

        def skip_line() -> None:
            nonlocal buf
            while True:
                end = buf.find(b"\n", pos)
                if end >= 0:
                    advance(end + 1)
                    return
                advance(len(buf))
                if not more():
                    return

        while True:
            advance(_skip_space(buf, pos))
            if pos >= len(buf):
                if more():
                    continue
                if in_array:
                    yield from self.bad(line, "JSON array not closed at end of input")
                break
            char = buf[pos : pos + 1]
            if in_array:
                if char == b"]":
                    advance(pos + 1)
                    in_array = want_comma = False
                    continue
                if want_comma:
                    if char == b",":
                        advance(pos + 1)
                        want_comma = False
                        continue
                    yield from self.bad(line, "expected ',' or ']' between array items")
                    in_array = want_comma = False
                    skip_line()
                    continue
            elif char == b"[":
                advance(pos + 1)
                in_array = True
                continue
            if char in (b"]", b"}", b","):
                yield from self.bad(line, f"unexpected {char.decode()!r}")
                skip_line()
                continue
            end = self._value_end(buf, pos)
            while end is None or (end == len(buf) and char not in (b"{", b"[", b'"')):
                if len(buf) - pos > MAX_RECORD_BYTES:
                    break
                if not more():
                    break
                end = self._value_end(buf, pos)
            if end is None:
                if len(buf) - pos > MAX_RECORD_BYTES:
                    yield from self.bad(line, f"value larger than {MAX_RECORD_BYTES >> 20} MiB")
                    skip_line()
                    continue
                yield from self.bad(line, "JSON value not closed at end of input")
                break
            raw = buf[pos:end]
            start_line = line
            advance(end)
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield from self.bad(start_line, _reason(exc))
                if char not in (b"{", b"[", b'"'):
                    skip_line()
                if in_array:
                    want_comma = True
                continue
            if in_array and type(value) is not dict:
                yield from self.bad(start_line, "array item is not a JSON object")
            else:
                yield from self.value(value, start_line, len(raw))
            if len(self.batch) >= 1024:
                yield self.batch
                self.batch = []
            if in_array:
                want_comma = True

    @staticmethod
    def _value_end(buf: bytes, pos: int) -> int | None:
        """Where the JSON value starting at `pos` ends, or None if `buf` stops first."""
        char = buf[pos]
        if char == 0x22:  # "
            match = _STRING_REST.match(buf, pos + 1)
            return match.end() if match else None
        if char not in (0x7B, 0x5B):  # { [
            match = _SCALAR.match(buf, pos)
            return match.end() if match else pos + 1
        depth = 0
        at = pos
        search = _STRUCTURAL.search
        string_rest = _STRING_REST.match
        while True:
            found = search(buf, at)
            if found is None:
                return None
            at = found.end()
            mark = buf[at - 1]
            if mark == 0x22:
                match = string_rest(buf, at)
                if match is None:
                    return None
                at = match.end()
            elif mark in (0x7B, 0x5B):
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return at


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run a read-map-write loop without the cycle collector.

    Parsed events hold no reference cycles, so reference counting frees them all; the
    collector would only rescan the live batch over and over (it more than doubled the
    time per event when measured).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _skip_space(buf: bytes, pos: int) -> int:
    match = _SPACE.match(buf, pos)
    return match.end() if match else pos


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


# ---------------------------------------------------------------- writing


class NdjsonWriter:
    """Compact JSON, one value a line, written in large blocks to a binary stream."""

    def __init__(self, stream: IO[bytes], *, flush_every: int = 2048) -> None:
        self.stream = stream
        self.flush_every = flush_every
        self.parts: list[bytes] = []
        self.written = 0

    def write(self, value: Any) -> None:
        """Serialise `value`; raises orjson.JSONEncodeError (nothing written) if it cannot."""
        self.parts.append(orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE))
        if len(self.parts) >= self.flush_every:
            self.flush()

    def write_indexed(self, index: int, record: dict[str, Any]) -> None:
        """`{"index": index, **record}`, without building that dict; `record` not empty."""
        self.parts.append(
            b'{"index":%d,%b' % (index, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)[1:])
        )
        if len(self.parts) >= self.flush_every:
            self.flush()

    def write_raw(self, line: bytes) -> None:
        """A line already serialised, without its newline."""
        self.parts.append(line + b"\n")
        if len(self.parts) >= self.flush_every:
            self.flush()

    def write_many(self, values: Iterable[Any]) -> None:
        for value in values:
            self.write(value)

    def flush(self) -> None:
        if self.parts:
            self.written += len(self.parts)
            self.stream.write(b"".join(self.parts))
            self.parts = []
        self.stream.flush()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> NdjsonWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonArrayWriter(NdjsonWriter):
    """One JSON array, an item a line; always closed, even when writing stops early."""

    def __init__(self, stream: IO[bytes], *, flush_every: int = 2048) -> None:
        super().__init__(stream, flush_every=flush_every)
        self.first = True
        self.stream.write(b"[")

    def write(self, value: Any) -> None:
        item = orjson.dumps(value)
        self.parts.append((b"\n" if self.first else b",\n") + item)
        self.first = False
        if len(self.parts) >= self.flush_every:
            self.flush()

    def write_indexed(self, index: int, record: dict[str, Any]) -> None:
        self.write_raw(b'{"index":%d,%b' % (index, orjson.dumps(record)[1:]))

    def write_raw(self, line: bytes) -> None:
        self.parts.append((b"\n" if self.first else b",\n") + line)
        self.first = False
        if len(self.parts) >= self.flush_every:
            self.flush()

    def close(self) -> None:
        self.parts.append(b"\n]\n" if not self.first else b"]\n")
        self.flush()
