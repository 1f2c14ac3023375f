"""Writers of indexed records: NDJSON and one JSON array."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from cmdai_cli.events.writers import JsonArrayWriter, NdjsonWriter


def test_ndjson_writer_batches_and_flushes() -> None:
    sink = io.BytesIO()
    writer = NdjsonWriter(sink, flush_every=2)
    writer.write_indexed(0, {"a": 1})
    assert sink.getvalue() == b""
    writer.write_indexed(7, {"userId": "u", "ignored": None})
    assert sink.getvalue() == b'{"index":0,"a":1}\n{"index":7,"userId":"u","ignored":null}\n'
    writer.write_indexed(8, {"b": 2})
    writer.close()
    assert sink.getvalue().endswith(b'{"index":8,"b":2}\n')


def test_json_array_writer_is_always_valid_json() -> None:
    sink = io.BytesIO()
    JsonArrayWriter(sink).close()
    assert json.loads(sink.getvalue()) == []
    sink = io.BytesIO()
    writer = JsonArrayWriter(sink, flush_every=1)
    writer.write_indexed(0, {"a": 1})
    writer.write_indexed(1, {"b": 2})
    writer.close()
    assert json.loads(sink.getvalue()) == [{"index": 0, "a": 1}, {"index": 1, "b": 2}]


@pytest.mark.parametrize(
    ("writer_class", "expected"),
    [
        (NdjsonWriter, b'{"index":1,"y":1}\n'),
        (JsonArrayWriter, b'[\n{"index":1,"y":1}\n]\n'),
    ],
)
def test_writer_refuses_what_it_cannot_encode_without_writing(
    writer_class: Any, expected: bytes
) -> None:
    sink = io.BytesIO()
    writer = writer_class(sink)
    with pytest.raises(TypeError):
        writer.write_indexed(0, {"x": object()})
    writer.write_indexed(1, {"y": 1})
    writer.close()
    assert sink.getvalue() == expected


@pytest.mark.parametrize("writer_class", [NdjsonWriter, JsonArrayWriter])
def test_writer_writes_what_orjson_cannot_as_json_stringify_does(writer_class: Any) -> None:
    sink = io.BytesIO()
    writer = writer_class(sink)
    deep: Any = []
    for _ in range(3000):  # past orjson's 255 levels and Python's recursion
        deep = [deep]
    writer.write_indexed(0, {"x": deep})
    writer.write_indexed(1, {"s": "a\ud800b", "n": -0.0, "i": float("inf"), "2": 1})
    writer.close()
    text = sink.getvalue()
    assert b"[" * 3000 + b"]" * 3000 in text
    # Lone surrogate escaped, -0 as 0, Infinity as null, an index key first.
    assert b'{"index":1,"2":1,"s":"a\\ud800b","n":0,"i":null}' in text
