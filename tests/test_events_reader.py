"""The event reader: every layout, bad records and the error policy, any chunking."""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterator
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
from cmdai_cli.events.records import BadRecord, ErrorPolicy, Event


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def events_of(specs: list[str], **kwargs: Any) -> Iterator[Event]:
    for batch in read_batches(expand_inputs(specs), **kwargs):
        yield from batch


def read_all(
    specs: list[str], **kwargs: Any
) -> tuple[list[tuple[int, int, dict[str, Any]]], list[BadRecord]]:
    bad: list[BadRecord] = []
    policy = ErrorPolicy("skip", report=bad.append)
    events = [(e.position, e.line, e.value) for e in events_of(specs, on_error=policy, **kwargs)]
    return events, bad


# ---------------------------------------------------------------- layouts


def test_ndjson_with_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "a.ndjson", b'\xef\xbb\xbf{"a":1}\r\n\r\n\n{"b":2}\r\n{"c":3}')
    events, bad = read_all([path])
    assert events == [(0, 1, {"a": 1}), (1, 4, {"b": 2}), (2, 5, {"c": 3})]
    assert bad == []


def test_json_array_pretty_printed(tmp_path: Path) -> None:
    data = json.dumps([{"a": 1}, {"b": {"c": "x]}"}}, {"d": 3}], indent=2).encode()
    events, bad = read_all([write(tmp_path, "a.json", data)])
    assert [(p, v) for p, _, v in events] == [
        (0, {"a": 1}),
        (1, {"b": {"c": "x]}"}}),
        (2, {"d": 3}),
    ]
    assert [line for _, line, _ in events] == [2, 5, 10]
    assert bad == []


def test_one_pretty_object_and_concatenated_values(tmp_path: Path) -> None:
    data = b'{\n  "a": "x\\"{"\n}\n{"b": 2}{"c": 3}\n  {"d":\n 4}'
    events, bad = read_all([write(tmp_path, "a.json", data)])
    assert events == [(0, 1, {"a": 'x"{'}), (1, 4, {"b": 2}), (2, 4, {"c": 3}), (3, 5, {"d": 4})]
    assert bad == []


def test_gzip_is_read_whatever_the_name_and_members_join(tmp_path: Path) -> None:
    data = gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}\n')
    events, bad = read_all([write(tmp_path, "events.log", data)])
    assert events == [(0, 1, {"a": 1}), (1, 2, {"b": 2})]
    truncated = gzip.compress(b'{"a":1}\n' * 1000)[:-30]
    events, bad = read_all([write(tmp_path, "cut.gz", truncated)])
    assert [b.reason for b in bad] == ["gzip data ends early (truncated file)"]


def test_empty_and_whitespace_inputs_have_no_events(tmp_path: Path) -> None:
    assert read_all([write(tmp_path, "a", b"")]) == ([], [])
    assert read_all([write(tmp_path, "b", b"\n \r\n\t")]) == ([], [])


# ---------------------------------------------------------------- bad records


def test_bad_records_carry_file_line_reason_and_use_an_index(tmp_path: Path) -> None:
    deep = b"[" * 1100 + b"]" * 1100
    data = b"\n".join(
        [
            b'{"ok":1}',
            b"not json",
            b'{"bad": "\xff"}',
            b"42",
            b'[{"x":1}, "s"]',
            deep,
            b'{"ok":2}',
        ]
    )
    path = write(tmp_path, "bad.ndjson", data)
    events, bad = read_all([path])
    assert events == [(0, 1, {"ok": 1}), (4, 5, {"x": 1}), (7, 7, {"ok": 2})]
    assert [(b.position, b.line, b.reason) for b in bad] == [
        (1, 2, "not valid JSON (invalid literal, expected 'null')"),
        (2, 3, "invalid UTF-8"),
        (3, 4, "not a JSON object"),
        (5, 5, "array item is not a JSON object"),
        # Read as JavaScript reads it (deeper than orjson's 1,024 levels): not an object.
        (6, 6, "array item is not a JSON object"),
    ]
    assert all(b.source == path for b in bad)


def test_an_event_over_32_kb_is_flagged(tmp_path: Path) -> None:
    big = orjson.dumps({"userId": "u", "traits": {"blob": "x" * 33_000}})
    fits = orjson.dumps({"userId": "u", "traits": {"blob": "x" * 32_000}})
    pretty = json.dumps(orjson.loads(fits), indent=4000).encode()  # over 32 KB only in spaces
    path = write(tmp_path, "big.ndjson", b"\n".join([fits, big, pretty.replace(b"\n", b"")]))
    events, bad = read_all([path])
    assert [p for p, _, _ in events] == [0, 2]
    assert len(bad) == 1
    assert bad[0].line == 2
    assert "over Segment's 32 KB limit" in bad[0].reason
    events, bad = read_all([path], max_event_bytes=None)
    assert len(events) == 3


def test_fail_hands_out_every_earlier_event_then_raises(tmp_path: Path) -> None:
    path = write(tmp_path, "a.ndjson", b'{"a":1}\n{"b":2}\n{"c":\n{"d":4}\n')
    seen = []
    with pytest.raises(DataError) as info:
        for event in events_of([path], on_error=ErrorPolicy("fail")):
            seen.append(event.value)
    assert seen == [{"a": 1}, {"b": 2}]
    assert (info.value.source, info.value.line) == (path, 3)
    assert str(info.value).startswith(f"{path}:3: not valid JSON")


def test_scanner_errors(tmp_path: Path) -> None:
    events, bad = read_all([write(tmp_path, "a.json", b'[{"a":1} {"b":2}]')])
    assert events == [(0, 1, {"a": 1})]
    assert bad[0].reason == "expected ',' or ']' between array items"
    events, bad = read_all([write(tmp_path, "b.json", b'[{"a":1},\n[{"b":2}]')])
    assert [b.reason for b in bad] == [
        "array item is not a JSON object",
        "JSON array not closed at end of input",
    ]
    events, bad = read_all([write(tmp_path, "c.json", b'{\n"a": 1\n}\n{"b": [1, 2')])
    assert events == [(0, 1, {"a": 1})]
    assert [(b.line, b.reason) for b in bad] == [(4, "JSON value not closed at end of input")]
    events, bad = read_all([write(tmp_path, "d.json", b'{\n"a": 1}\n}\n{"b": 2}')])
    assert [v for _, _, v in events] == [{"a": 1}, {"b": 2}]
    assert [(b.line, b.reason) for b in bad] == [(3, "unexpected '}'")]


# ---------------------------------------------------------------- several inputs
def test_ndjson_that_turns_pretty_or_packs_values_on_a_line(tmp_path: Path) -> None:
    data = b'{"a":1}\n{"b":2} {"c":3}\n{\n  "d": 4\n}\n{"e":5}\n'
    events, bad = read_all([write(tmp_path, "a.ndjson", data)])
    assert events == [
        (0, 1, {"a": 1}),
        (1, 2, {"b": 2}),
        (2, 2, {"c": 3}),
        (3, 3, {"d": 4}),
        (4, 6, {"e": 5}),
    ]
    assert bad == []


def test_indexes_run_across_files_dirs_and_globs(tmp_path: Path) -> None:
    folder = tmp_path / "day"
    folder.mkdir()
    (folder / "2.ndjson").write_bytes(b'{"n":2}\n{"n":3}\n')
    (folder / "1.ndjson").write_bytes(b'{"n":1}\n')
    (folder / ".hidden").write_bytes(b"junk")
    other = write(tmp_path, "x.ndjson", b'{"n":4}\n')
    events, _ = read_all([str(folder), str(tmp_path / "x.*")])
    assert [(p, v["n"]) for p, _, v in events] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert [i.name for i in expand_inputs([other])] == [other]


def test_stdin_by_default_and_as_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin:
        buffer = io.BytesIO(b'{"a":1}\n')

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert [e.source for e in events_of([])] == ["<stdin>"]
    Stdin.buffer = io.BytesIO(b'[{"a":1}]')
    assert [e.value for e in events_of(["-"])] == [{"a": 1}]


# ---------------------------------------------------------------- any layout, any chunking

EVENT = st.dictionaries(
    st.text(max_size=5),
    st.recursive(
        st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
        max_leaves=8,
    ),
    max_size=5,
)


def _layout(events: list[dict[str, Any]], how: str) -> bytes:
    if how == "ndjson":
        return b"".join(orjson.dumps(e) + b"\r\n" for e in events)
    if how == "array":
        return json.dumps(events, indent=1).encode()
    if how == "pretty":
        return b"\n".join(json.dumps(e, indent=2).encode() for e in events)
    return b" ".join(orjson.dumps(e) for e in events)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(EVENT, max_size=12),
    how=st.sampled_from(["ndjson", "array", "pretty", "concatenated"]),
    chunk=st.integers(1, 64),
    gz=st.booleans(),
)
def test_every_layout_reads_back_in_order(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[dict[str, Any]],
    how: str,
    chunk: int,
    gz: bool,
) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", chunk)
    data = _layout(events, how)
    if gz:
        data = gzip.compress(data)
    got, bad = read_all([write(tmp_path, "e", data)])
    assert bad == []
    assert [v for _, _, v in got] == events
    assert [p for p, _, _ in got] == list(range(len(events)))
