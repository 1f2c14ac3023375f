"""The map-payload pipeline: one mapper per target, a stream mapped in order, the tally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdai_cli.errors import DataError
from cmdai_cli.events.records import BadRecord
from cmdai_cli.mapping.pipeline import (
    MapRequest,
    MapResult,
    Write,
    make_mapper,
    map_events,
    map_stream,
)
from cmdai_cli.mapping.webhook import parse_mapping
from tests.mapping_samples import IDENTIFY, TRACK, settings_with

# ---------------------------------------------------------------- map_stream


def test_map_stream_keeps_order_and_reports_problems() -> None:
    events = [IDENTIFY, {"userId": "u", "traits": 5}, TRACK, {"type": "page"}]
    batches = [[(i, "f", i + 1, e) for i, e in enumerate(events[:2])]]
    batches.append([(i + 2, "f", i + 3, e) for i, e in enumerate(events[2:])])
    written: list[tuple[int, dict[str, Any]]] = []
    problems: list[tuple[Any, ...]] = []
    tally = map_stream(
        batches,
        make_mapper("webhook"),
        lambda i, r: written.append((i, r)),
        lambda *p: problems.append(p),
    )
    assert [i for i, _ in written] == [0, 2, 3]
    assert problems == [(1, "f", 2, "traits is not an object")]
    # Bad events are counted by whoever handles them (map_events: the error policy).
    assert (tally.recorded, tally.ignored, tally.errors) == (2, {"no userId": 1}, {})


def test_map_stream_counts_survive_a_stop() -> None:
    tally = MapResult()

    def stop(*_: Any) -> None:
        raise RuntimeError("stop")

    batches = [[(0, "f", 1, IDENTIFY), (1, "f", 2, "nope"), (2, "f", 3, IDENTIFY)]]
    with pytest.raises(RuntimeError):
        map_stream(batches, make_mapper(), lambda i, r: None, stop, tally)
    assert tally.recorded == 1


def test_a_record_the_writer_cannot_encode_is_a_problem_not_a_crash() -> None:
    def write(index: int, record: dict[str, Any]) -> None:
        raise TypeError("recursion limit exceeded")

    problems: list[tuple[Any, ...]] = []
    tally = map_stream(
        [[(0, "f", 1, IDENTIFY)]], make_mapper(), write, lambda *p: problems.append(p)
    )
    assert problems == [(0, "f", 1, "output cannot be written: recursion limit exceeded")]
    assert tally.recorded == 0


def test_make_mapper_rejects_an_unknown_target() -> None:
    with pytest.raises(ValueError):
        make_mapper("email")  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SPECIAL_KEYS = st.sampled_from(
    ["userId", "traits", "type", "event", "properties", "context", "user_property_event"]
)
EVENTS = st.dictionaries(
    st.one_of(SPECIAL_KEYS, st.text(max_size=8), st.text(max_size=6).map("user_property.".__add__)),
    JSON,
    max_size=8,
)
SOURCES = st.one_of(
    st.sampled_from(["$.", "$.userId", "$.traits", "$.event", "$.properties.plan", "$.a[0]"]),
    st.text(max_size=6),
)
MAPPINGS = st.dictionaries(
    st.one_of(SPECIAL_KEYS, st.text(min_size=1, max_size=6).map("user_property.".__add__)),
    SOURCES,
    max_size=5,
)


@settings(max_examples=300)
@given(event=EVENTS, table=MAPPINGS, deploy=st.booleans(), explain=st.booleans())
def test_the_mapping_never_raises_on_any_json_object(
    event: dict[str, Any], table: dict[str, str], deploy: bool, explain: bool
) -> None:
    parsed = parse_mapping(table)
    for target in ("webhook", "destination"):
        record, problem = make_mapper(target, parsed, deploy=deploy, explain=explain)(event)
        assert (record is None) != (problem is None)
        if record is not None:
            assert "ignored" in record


@settings(max_examples=100)
@given(events=st.lists(st.one_of(EVENTS, JSON), max_size=30), size=st.integers(1, 7))
def test_output_order_and_count_match_the_input(events: list[Any], size: int) -> None:
    items = [(i, "f", i + 1, e) for i, e in enumerate(events)]
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    seen: list[int] = []
    problems: list[int] = []

    def on_problem(i: int, *_: Any) -> None:
        seen.append(i)
        problems.append(i)

    tally = map_stream(batches, make_mapper(), lambda i, r: seen.append(i), on_problem)
    assert seen == list(range(len(events)))
    assert tally.recorded + tally.ignored_total + len(problems) == len(events)


# ---------------------------------------------------------------- map_events


def ndjson_file(tmp_path: Path, name: str, *lines: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


class Output:
    """Stands in for stdout: what was written, and whether it was opened at all."""

    def __init__(self) -> None:
        self.opened = False
        self.records: list[tuple[int, dict[str, Any]]] = []

    def open(self) -> Write:
        self.opened = True
        return lambda index, record: self.records.append((index, record))


def test_map_events_counts_bad_records_from_the_reader_and_the_mapping(tmp_path: Path) -> None:
    path = ndjson_file(
        tmp_path,
        "a.ndjson",
        orjson.dumps(IDENTIFY),
        b"not json",
        b'{"userId": "u", "traits": 5}',
        b'{"type": "page"}',
        orjson.dumps(TRACK),
    )
    out = Output()
    reported: list[BadRecord] = []
    request = MapRequest(settings_with(), [path], on_error="skip")
    tally = map_events(request, out.open, report=reported.append)
    assert [i for i, _ in out.records] == [0, 3, 4]
    assert [(b.position, b.line) for b in reported] == [(1, 2), (2, 3)]
    assert (tally.recorded, tally.ignored, tally.events) == (2, {"no userId": 1}, 5)
    assert tally.errors == {
        "not valid JSON (invalid literal, expected 'null')": 1,
        "traits is not an object": 1,
    }


def test_map_events_fail_writes_what_came_before_then_raises_with_the_count(
    tmp_path: Path,
) -> None:
    path = ndjson_file(tmp_path, "a.ndjson", orjson.dumps(IDENTIFY), b"[1", orjson.dumps(TRACK))
    out = Output()
    tally = MapResult()
    with pytest.raises(DataError) as info:
        map_events(MapRequest(settings_with(), [path]), out.open, result=tally)
    assert (info.value.source, info.value.line) == (path, 2)
    assert [i for i, _ in out.records] == [0]
    assert (tally.recorded, tally.errors_total) == (1, 1)


def test_map_events_checks_its_arguments_before_opening_the_output(tmp_path: Path) -> None:
    out = Output()
    with pytest.raises(DataError, match="no such file"):
        map_events(MapRequest(settings_with(), [str(tmp_path / "absent.ndjson")]), out.open)
    with pytest.raises(DataError, match="bad path"):
        map_events(MapRequest(settings_with(mapping={"userId": "$.a["})), out.open)
    assert not out.opened


def test_map_events_uses_the_mapping_file_then_the_profile(tmp_path: Path) -> None:
    path = ndjson_file(tmp_path, "a.ndjson", orjson.dumps(TRACK))
    mapping_file = tmp_path / "m.toml"
    mapping_file.write_text('[mapping]\nuserId = "$.userId"\n"user_property.x" = "file"\n')
    profile = settings_with(mapping={"userId": "$.userId", "user_property.x": "profile"})
    out = Output()
    map_events(MapRequest(profile, [path]), out.open)
    map_events(MapRequest(profile, [path], mapping_file=mapping_file), out.open)
    assert [r["properties"] for _, r in out.records] == [{"x": "profile"}, {"x": "file"}]


def test_map_events_destination_takes_deploy_from_the_settings(tmp_path: Path) -> None:
    path = ndjson_file(tmp_path, "a.ndjson", orjson.dumps(IDENTIFY))
    # The webhook mapping plays no part in the destination target, even a broken one.
    broken: dict[str, Any] = {"mapping": {"userId": 5}}
    out = Output()
    map_events(MapRequest(settings_with(**broken), [path], target="destination"), out.open)
    deploy = settings_with(deploy_via_segment=True, **broken)
    map_events(MapRequest(deploy, [path], target="destination"), out.open)
    assert [r["call"] for _, r in out.records] == ["addMetadataBatch", "boot"]
