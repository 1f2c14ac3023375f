"""Writing indexed records: NDJSON, or one JSON array, in large blocks.

A record goes out as `{"index": i, **record}`, serialised by orjson, or as JavaScript's
`JSON.stringify` writes it where orjson cannot or would differ (`js_json.compact`: lone
surrogates escaped, -0 as 0, nesting past 255 levels). Records are joined and written
`flush_every` at a time, so a long stream makes few system calls.
"""

from __future__ import annotations

from typing import IO, Any

import orjson

from cmdai_cli.js_json import compact, dumps

__all__ = ["JsonArrayWriter", "NdjsonWriter"]


class NdjsonWriter:
    """Compact JSON, one record a line, written in large blocks to a binary stream."""

    def __init__(self, stream: IO[bytes], *, flush_every: int = 2048) -> None:
        self.stream = stream
        self.flush_every = flush_every
        self.parts: list[bytes] = []

    def write_indexed(self, index: int, record: dict[str, Any]) -> None:
        """`{"index": index, **record}`, without building that dict; `record` not empty.

        Raises TypeError, with nothing written, when `record` cannot be serialised.
        """
        try:
            data = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            data = dumps(record) + b"\n"
        self.parts.append(b'{"index":%d,%b' % (index, data[1:]))
        if len(self.parts) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            block = b"".join(self.parts)
            if b"-0.0" in block:
                # orjson writes negative zero as -0.0, JSON.stringify as 0: one search
                # of the block, and only the lines that hold it written again.
                block = b"".join(self._stringified())
            self.stream.write(block)
            self.parts = []
        self.stream.flush()

    def _stringified(self) -> list[bytes]:
        # orjson reads back exactly what it wrote, -0.0 included.
        return [
            dumps(orjson.loads(part)) + b"\n" if b"-0.0" in part else part for part in self.parts
        ]

    def close(self) -> None:
        self.flush()


class JsonArrayWriter(NdjsonWriter):
    """One JSON array, a record a line; valid JSON once closed, even when writing stops early."""

    def __init__(self, stream: IO[bytes], *, flush_every: int = 2048) -> None:
        super().__init__(stream, flush_every=flush_every)
        self.first = True
        self.stream.write(b"[")

    def write_indexed(self, index: int, record: dict[str, Any]) -> None:
        item = b'{"index":%d,%b' % (index, compact(record)[1:])
        self.parts.append((b"\n" if self.first else b",\n") + item)
        self.first = False
        if len(self.parts) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        # Each item is already as JSON.stringify writes it (`compact`).
        if self.parts:
            self.stream.write(b"".join(self.parts))
            self.parts = []
        self.stream.flush()

    def close(self) -> None:
        self.parts.append(b"\n]\n" if not self.first else b"]\n")
        self.flush()
