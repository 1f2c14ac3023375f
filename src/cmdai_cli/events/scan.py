"""The value scanner: records of an input that is not one JSON value a line.

JSON values one after another (pretty-printed or several on a line), or a top-level
array whose items are the records. The scanner finds where each value ends from its
brackets and strings alone, then hands that value's bytes to orjson; a record's line
is the line its value starts on. A value larger than the record limit is stepped over
without being kept, so an array item too large to read costs that item alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Protocol

import orjson

from cmdai_cli.events.records import DEFAULT_MAX_RECORD_BYTES, Event, too_large
from cmdai_cli.js_json import NOT_JSON, slow_loads

__all__ = ["RecordSink", "prepend", "reason_of", "scan"]

_STRUCTURAL = re.compile(rb'[{}\[\]"]')
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(rb'[^\s,\[\]{}"]+')
_SPACE = re.compile(rb"[ \t\r\n]*")
_STRING_STOP = re.compile(rb'["\\]')


class RecordSink(Protocol):
    """Where scanned values go: the reader of the input being read."""

    batch: list[Event]

    def bad(self, line: int | None, reason: str) -> Iterator[list[Event]]: ...

    def value(self, value: Any, line: int, size: int, raw: bytes) -> Iterator[list[Event]]: ...


def scan(
    sink: RecordSink,
    chunks: Iterator[bytes],
    first_line: int = 1,
    *,
    limit: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[list[Event]]:
    """JSON values one after another; a top-level array's items are the records.

    Values go to `sink.value`, problems to `sink.bad`; batches of `sink.batch` are
    yielded as they fill, as the line reader does. A value over `limit` bytes is a bad
    record; no more than about `limit` bytes of it are ever held.
    """
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

    def skip_value() -> bool:
        """Move past the value at `pos` without keeping it; False if the input ends first."""
        nonlocal buf
        first = buf[pos]
        if first not in (0x7B, 0x5B, 0x22):  # a scalar ends at the next delimiter
            while True:
                match = _SCALAR.match(buf, pos)
                end = match.end() if match else pos
                if end < len(buf):
                    advance(end)
                    return True
                advance(len(buf))
                if not more():
                    return True
        depth = 0
        in_string = first == 0x22
        escaped = False
        at = pos + 1 if in_string else pos
        while True:
            if escaped and at < len(buf):
                at += 1
                escaped = False
            if at >= len(buf):
                advance(len(buf))
                if not more():
                    return False
                at = 0
                continue
            if in_string:
                found = _STRING_STOP.search(buf, at)
                if found is None:
                    at = len(buf)
                elif buf[found.start()] == 0x5C:  # a backslash: the next byte is escaped
                    at = found.end()
                    escaped = True
                else:
                    at = found.end()
                    in_string = False
                    if depth == 0:
                        advance(at)
                        return True
                continue
            found = _STRUCTURAL.search(buf, at)
            if found is None:
                at = len(buf)
                continue
            at = found.end()
            mark = buf[at - 1]
            if mark == 0x22:
                in_string = True
            elif mark in (0x7B, 0x5B):
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    advance(at)
                    return True

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
                yield from sink.bad(line, "JSON array not closed at end of input")
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
                yield from sink.bad(line, "expected ',' or ']' between array items")
                in_array = want_comma = False
                skip_line()
                continue
        elif char == b"[":
            advance(pos + 1)
            in_array = True
            continue
        if char in (b"]", b"}", b","):
            yield from sink.bad(line, f"unexpected {char.decode()!r}")
            skip_line()
            continue
        end = _value_end(buf, pos)
        while end is None or (end == len(buf) and char not in (b"{", b"[", b'"')):
            if len(buf) - pos > limit or not more():
                break
            end = _value_end(buf, pos)
        if (end if end is not None else len(buf)) - pos > limit:
            yield from sink.bad(line, too_large(limit))
            if not skip_value():
                break
            if in_array:
                want_comma = True
            continue
        if end is None:
            yield from sink.bad(line, "JSON value not closed at end of input")
            break
        raw = buf[pos:end]
        start_line = line
        advance(end)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # What orjson refuses and JavaScript reads takes the slow road.
            value = slow_loads(raw, exc)
            if value is NOT_JSON:
                yield from sink.bad(start_line, reason_of(exc))
                if char not in (b"{", b"[", b'"'):
                    skip_line()
                if in_array:
                    want_comma = True
                continue
        if in_array and type(value) is not dict:
            yield from sink.bad(start_line, "array item is not a JSON object")
        else:
            yield from sink.value(value, start_line, len(raw), raw)
        if len(sink.batch) >= 1024:
            yield sink.batch
            sink.batch = []
        if in_array:
            want_comma = True


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


def _skip_space(buf: bytes, pos: int) -> int:
    match = _SPACE.match(buf, pos)
    return match.end() if match else pos


def prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """`head`, then every chunk of `rest`."""
    if head:
        yield head
    yield from rest


def reason_of(exc: Exception) -> str:
    """The reason a record orjson refused is bad, in the words the output uses."""
    text = str(exc)
    # orjson appends its own position; the line is reported separately.
    text = re.sub(r": line \d+ column \d+ \(char \d+\)$", "", text)
    if text.startswith("str is not valid UTF-8"):
        return "invalid UTF-8"
    if text.startswith("depth limit exceeded"):
        return "nested too deeply (over 1024 levels)"
    return f"not valid JSON ({text})"
