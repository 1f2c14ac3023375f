"""The reader under hostile input: records over the limit, gzip bombs, huge one-line arrays.

Memory is measured with tracemalloc (every bytes object the reader makes is counted), with
the record limit made small so that the inputs stay small too.
"""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdai_cli.errors import DataError
from cmdai_cli.events import inputs
from cmdai_cli.events.inputs import expand_inputs
from cmdai_cli.events.reader import read_batches
from cmdai_cli.events.records import BadRecord, ErrorPolicy

LIMIT = 4096
TOO_LARGE = f"record larger than {LIMIT} bytes (--max-record-bytes)"


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_all(
    specs: list[str], limit: int = LIMIT, **kwargs: Any
) -> tuple[list[tuple[int, int, dict[str, Any]]], list[tuple[int | None, int | None, str]]]:
    bad: list[BadRecord] = []
    policy = ErrorPolicy("skip", report=bad.append)
    events = [
        (e.position, e.line, e.value)
        for batch in read_batches(
            expand_inputs(specs), on_error=policy, max_record_bytes=limit, **kwargs
        )
        for e in batch
    ]
    return events, [(b.position, b.line, b.reason) for b in bad]


def gzip_of(parts: Iterable[bytes]) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [packer.compress(part) for part in parts]
    out.append(packer.flush())
    return b"".join(out)


def peak_while(read: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = read()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- the record limit


@pytest.mark.parametrize("gz", [False, True])
def test_a_line_over_the_limit_is_a_bad_record_and_the_next_lines_keep_their_numbers(
    tmp_path: Path, gz: bool
) -> None:
    long = b'{"p":"' + b"x" * (3 * LIMIT) + b'"}'
    data = b'{"n":1}\n' + long + b'\n{"n":3}\n\n{"n":5}\n'
    if gz:
        data = gzip.compress(data)
    events, bad = read_all([write(tmp_path, "a.ndjson", data)])
    assert events == [(0, 1, {"n": 1}), (2, 3, {"n": 3}), (3, 5, {"n": 5})]
    assert bad == [(1, 2, TOO_LARGE)]


def test_a_line_over_the_limit_spanning_many_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 1000)
    long = b'{"p":"' + b"y" * (10 * LIMIT) + b'"}'
    data = b'{"n":1}\n' + long + b'\n{"n":3}\n' + long + b"\n"
    events, bad = read_all([write(tmp_path, "a.ndjson", data)])
    assert events == [(0, 1, {"n": 1}), (2, 3, {"n": 3})]
    assert bad == [(1, 2, TOO_LARGE), (3, 4, TOO_LARGE)]


def test_with_fail_the_record_over_the_limit_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.ndjson", b'{"n":1}\n{"p":"' + b"z" * LIMIT * 2 + b'"}\n')
    seen: list[dict[str, Any]] = []
    with pytest.raises(DataError) as info:
        for batch in read_batches(expand_inputs([path]), max_record_bytes=LIMIT):
            seen.extend(e.value for e in batch)
    assert seen == [{"n": 1}]
    assert str(info.value) == f"{path}:2: {TOO_LARGE}"


def test_a_pretty_printed_value_over_the_limit_is_stepped_over(tmp_path: Path) -> None:
    big = {"a": ["x" * 100 for _ in range(LIMIT // 50)], "s": 'q"}{]['}
    pretty = orjson.dumps(big, option=orjson.OPT_INDENT_2)
    data = b'{\n "n": 1\n}\n' + pretty + b'\n{\n "n": 3\n}\n'
    events, bad = read_all([write(tmp_path, "a.json", data)])
    lines_of_big = pretty.count(b"\n") + 1
    assert events == [(0, 1, {"n": 1}), (2, 4 + lines_of_big, {"n": 3})]
    assert bad == [(1, 4, TOO_LARGE)]


# ---------------------------------------------------------------- arrays on one line


def test_a_one_line_array_larger_than_the_limit_is_read_item_by_item(tmp_path: Path) -> None:
    items = [{"n": n, "pad": "p" * 20} for n in range(2000)]  # ~70 KB, the limit is 4 KB
    path = write(tmp_path, "a.json", orjson.dumps(items))
    events, bad = read_all([path])
    assert bad == []
    assert [v for _, _, v in events] == items
    assert {line for _, line, _ in events} == {1}


def test_an_array_item_over_the_limit_costs_that_item_alone(tmp_path: Path) -> None:
    items: list[Any] = [{"n": 0}, {"big": ['\\"]' * LIMIT]}, {"n": 2}, "x" * LIMIT * 2, {"n": 4}]
    path = write(tmp_path, "a.json", orjson.dumps(items))
    events, bad = read_all([path])
    assert events == [(0, 1, {"n": 0}), (2, 1, {"n": 2}), (4, 1, {"n": 4})]
    assert bad == [(1, 1, TOO_LARGE), (3, 1, TOO_LARGE)]


def test_ndjson_with_a_long_array_on_a_later_line(tmp_path: Path) -> None:
    items = [{"n": n} for n in range(1, 1500)]
    data = b'{"n":0}\n' + orjson.dumps(items) + b'\n{"n":1500}\n'
    events, bad = read_all([write(tmp_path, "a.ndjson", data)])
    assert bad == []
    assert [v["n"] for _, _, v in events] == list(range(1501))
    assert [line for _, line, _ in events][:2] == [1, 2]
    assert events[-1][1] == 3


# ---------------------------------------------------------------- bombs


def test_gzip_never_inflates_a_chunk_past_chunk_bytes() -> None:
    bomb = gzip_of(b"\n" * (1 << 20) for _ in range(40))
    assert len(bomb) < 100_000
    sizes = [len(c) for c in inputs.chunks(io.BytesIO(bomb))]
    assert sum(sizes) == 40 << 20
    assert max(sizes) <= inputs.CHUNK_BYTES


@pytest.mark.parametrize(
    "filler",
    [b"\n", b" ", b"\r\n\t "],
    ids=["newlines", "spaces", "mixed"],
)
def test_whitespace_bombs_are_blank_lines_read_in_bounded_memory(
    tmp_path: Path, filler: bytes
) -> None:
    bomb = gzip_of(
        [b'{"n":1}\n', *(filler * ((1 << 20) // len(filler)) for _ in range(40)), b'\n{"n":2}\n']
    )
    path = write(tmp_path, "bomb.gz", bomb)
    (events, bad), peak = peak_while(lambda: read_all([path]))
    assert [v for _, _, v in events] == [{"n": 1}, {"n": 2}]
    assert bad == []
    lines = 2 + (40 << 20) // len(filler) * filler.count(b"\n") + 1
    assert events[1][1] == lines
    assert peak < 8 << 20


def test_a_gzip_bomb_of_one_line_is_one_bad_record_in_bounded_memory(tmp_path: Path) -> None:
    bomb = gzip_of([b'{"p":"', *(b"x" * (1 << 20) for _ in range(60)), b'"}\n{"n":2}\n'])
    path = write(tmp_path, "bomb.ndjson.gz", bomb)
    (events, bad), peak = peak_while(lambda: read_all([path]))
    assert events == [(1, 2, {"n": 2})]
    assert bad == [(0, 1, TOO_LARGE)]
    assert peak < 8 << 20


def test_a_one_line_array_bomb_is_read_in_bounded_memory(tmp_path: Path) -> None:
    item = b'{"type":"track","event":"Opened","userId":"u1","pad":"%b"}' % (b"p" * 450)
    # About 12 MB inflated, on one line: more than the 8 MB bound by itself, so a reader
    # that held the line (or the parsed list) fails, and quick under tracemalloc.
    chunks = 24
    count = chunks * 1000
    bomb = gzip_of(
        [
            b"[",
            *(b",".join([item] * 1000) + (b"," if i < chunks - 1 else b"") for i in range(chunks)),
            b"]",
        ]
    )
    path = write(tmp_path, "array.json.gz", bomb)

    def count_events() -> tuple[int, int]:
        seen = bad = 0
        policy = ErrorPolicy("skip", report=lambda _: None)
        for batch in read_batches(expand_inputs([path]), on_error=policy, max_record_bytes=LIMIT):
            seen += len(batch)
        bad = sum(policy.reasons.values())
        return seen, bad

    (seen, bad), peak = peak_while(count_events)
    assert (seen, bad) == (count, 0)
    assert peak < 8 << 20


# ---------------------------------------------------------------- fuzzing

PIECES = st.sampled_from(
    [
        b'{"a":1}',
        b'{"b":"x\\"y"}',
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b'"',
        b"\\",
        b"\n",
        b"\r\n",
        b" ",
        b"\xef\xbb\xbf",
        b"\xff",
        b"null",
        b"1e999",
        b'"' + b"s" * 300 + b'"',
        b"[" * 40,
        b'{"k":[' + b"1," * 200 + b"1]}",
    ]
)


def _check_invariants(data: bytes, limit: int, tmp_path: Path, *, gz: bool = False) -> None:
    path = write(tmp_path, "fuzz", gzip.compress(data) if gz else data)
    events, bad = read_all([path], limit=limit)
    positions = sorted([p for p, _, _ in events] + [p for p, _, _ in bad if p is not None])
    # Every record has one index, events and bad records alike, with no gap.
    assert positions == list(range(len(positions)))
    assert all(type(v) is dict for _, _, v in events)
    assert all(line >= 1 for _, line, _ in events)
    lines = data.count(b"\n") + 1
    assert all(line <= lines for _, line, _ in events)
    # With `fail`, the same input raises DataError (never anything else) or reads the same.
    got: list[dict[str, Any]] = []
    try:
        for batch in read_batches(expand_inputs([path]), max_record_bytes=limit):
            got.extend(e.value for e in batch)
    except DataError:
        assert bad
    else:
        assert not bad
        assert got == [v for _, _, v in events]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pieces=st.lists(PIECES, max_size=40),
    chunk=st.integers(1, 64),
    limit=st.integers(8, 400),
    gz=st.booleans(),
)
def test_fuzzed_layouts_never_break_the_reader(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pieces: list[bytes],
    chunk: int,
    limit: int,
    gz: bool,
) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", chunk)
    data = b"".join(pieces)
    _check_invariants(data, limit, tmp_path, gz=gz)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=600), chunk=st.integers(1, 64), limit=st.integers(8, 400))
def test_fuzzed_bytes_never_break_the_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, chunk: int, limit: int
) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", chunk)
    _check_invariants(data, limit, tmp_path)
