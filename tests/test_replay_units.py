"""The replay core, piece by piece: selection, sizes, batches, checkpoint, error files."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdai_cli.commandai import auth_headers, signature
from cmdai_cli.errors import DataError, ExitCode, UsageError
from cmdai_cli.replay.batching import (
    MAX_BATCH_BYTES,
    Pending,
    UserBuilder,
    exact_size,
    segment_builder,
    segment_encoding,
)
from cmdai_cli.replay.checkpoint import Checkpoint, Ranges, read_journal
from cmdai_cli.replay.errorlog import ErrorLog, unwrap
from cmdai_cli.replay.result import ReplayResult
from cmdai_cli.replay.select import (
    Filters,
    derive_message_id,
    ensure_message_id,
    parse_shard,
    shard_of,
)
from cmdai_cli.segment.messages import check_message, message_problem

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


# ---------------------------------------------------------------- messageIds and shards


def test_derived_message_id_is_stable_and_ignores_key_order_and_transport() -> None:
    a = {"type": "track", "event": "Opened", "userId": "u1", "properties": {"x": 1, "y": 2}}
    b = {"properties": {"y": 2, "x": 1}, "userId": "u1", "event": "Opened", "type": "track"}
    c = dict(b, sentAt="2025-01-01T00:00:00Z", receivedAt="2025-01-02T00:00:00Z")
    assert derive_message_id(a) == derive_message_id(b) == derive_message_id(c)
    assert derive_message_id(a) != derive_message_id(dict(a, userId="u2"))
    assert len(derive_message_id(a)) <= 100


def test_ensure_message_id_keeps_a_given_one() -> None:
    event: dict[str, Any] = {"type": "track", "messageId": "keep-me"}
    assert ensure_message_id(event) == "keep-me"
    empty: dict[str, Any] = {"type": "track", "messageId": ""}
    assert ensure_message_id(empty) == empty["messageId"] != ""


@given(st.lists(st.text(min_size=1), min_size=1, max_size=50), st.integers(1, 7))
def test_shards_partition_the_ids(ids: list[str], count: int) -> None:
    for message_id in ids:
        owners = [k for k in range(1, count + 1) if parse_shard(f"{k}/{count}").owns(message_id)]
        assert owners == [shard_of(message_id, count)]


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "3", "-1/2"])
def test_bad_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_shard(text)


def test_filters() -> None:
    f = Filters.build(["identify,track"], [], "2025-05-01", "2025-05-02T00:00:00Z")
    assert f.matches({"type": "track", "timestamp": "2025-05-01T00:00:00Z"})
    assert f.matches({"type": "identify", "timestamp": "2025-05-01T23:59:59.999+00:00"})
    assert not f.matches({"type": "page", "timestamp": "2025-05-01T10:00:00Z"})
    assert not f.matches({"type": "track", "timestamp": "2025-05-02T00:00:00Z"})
    assert not f.matches({"type": "track", "timestamp": "2025-04-30T23:59:59Z"})
    assert not f.matches({"type": "track"})
    assert not f.matches({"type": "track", "timestamp": "yesterday"})
    named = Filters.build([], ["Opened"])
    assert named.matches({"type": "track", "event": "Opened"})
    assert not named.matches({"type": "track", "event": "Closed"})
    with pytest.raises(UsageError):
        Filters.build([], [], "2025-05-02", "2025-05-01")
    with pytest.raises(UsageError):
        Filters.build([], [], "last tuesday")


# ---------------------------------------------------------------- sizes and batches


@settings(max_examples=300)
@given(json_values)
def test_a_messages_size_is_never_below_what_the_library_sends(value: Any) -> None:
    try:
        size, encoded = segment_encoding(value)
    except TypeError:  # integers orjson cannot write never come out of the reader
        return
    assert size >= exact_size(value) == len(json.dumps(value).encode())
    assert orjson.loads(encoded) == value


def test_a_messages_size_is_close_for_ordinary_events() -> None:
    event = {"type": "track", "event": "Opened", "userId": "u", "properties": {"a": 1.5e-7}}
    size, _ = segment_encoding(event)
    assert exact_size(event) <= size <= exact_size(event) + 8


def test_segment_encoding_is_the_message_and_its_size_near_the_limit_is_exact() -> None:
    event = {"type": "track", "event": "Opened", "userId": "u-1", "properties": {"é": 1e-7}}
    size, encoded = segment_encoding(event)
    assert orjson.loads(encoded) == event
    assert size == exact_size(event)  # not ASCII: measured exactly
    near = {"type": "track", "event": "E", "userId": "u", "properties": {"s": "a-b," * 8180}}
    size, encoded = segment_encoding(near)
    assert size == exact_size(near) and orjson.loads(encoded) == near


def _pending(n: int) -> Pending:
    return Pending(n, "f", n + 1, {})


def test_segment_batches_stay_within_count_and_bytes() -> None:
    builder = segment_builder(0, None)
    batches = []
    for n in range(6000):
        size = 30_000 if n % 1000 == 0 else 100
        if not builder.fits(size):
            batches.append(builder.take(n))
        if builder.add(_pending(n), orjson.dumps({"n": n}), size):
            assert builder.full
            batches.append(builder.take(n + 1))
    batches.append(builder.take(6000))
    assert all(len(b) <= 2500 for b in batches)
    for b in batches:
        assert b.body is not None
        assert orjson.loads(b.body) == [{"n": n} for n in range(b.start, b.end)]
    assert [b.start for b in batches[1:]] == [b.end for b in batches[:-1]]
    assert batches[0].start == 0 and batches[-1].end == 6000
    assert sum(len(b) for b in batches) == 6000
    big = segment_builder(0, None)
    for n in range(40):
        if not big.fits(30_000):
            assert big.bytes + 30_002 > MAX_BATCH_BYTES - 512
            break
        big.add(_pending(n), b"{}", 30_000)
    assert big.bytes <= MAX_BATCH_BYTES


def test_user_builder_merges_per_user_later_wins() -> None:
    builder = UserBuilder(0, 2)
    builder.add(_pending(0), ("u1", {"plan": "free", "a": 1}))
    builder.add(_pending(1), ("u1", {"plan": "pro"}))
    assert not builder.full
    assert builder.add(_pending(2), ("u2", {"b": True}))
    assert builder.full
    batch = builder.take(3)
    assert batch.items == [
        {"id": "u1", "properties": {"plan": "pro", "a": 1}},
        {"id": "u2", "properties": {"b": True}},
    ]
    assert len(batch) == 3


# ---------------------------------------------------------------- validation, signing, auth


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "track", "userId": "u", "event": "Opened"}, None),
        ({"type": "identify", "anonymousId": "a", "timestamp": "2025-05-01T12:00:00Z"}, None),
        ({"type": "x", "userId": "u"}, "type 'x' is not one of"),
        ({"type": "track", "userId": "", "event": "Opened"}, "neither userId nor anonymousId"),
        ({"type": "track", "userId": "u", "event": 3}, "a track needs an event name"),
        ({"type": "group", "userId": "u"}, "a group needs groupId"),
        ({"type": "alias", "userId": "u"}, "an alias needs previousId and userId"),
        ({"type": "page", "userId": "u", "messageId": "x" * 101}, "messageId has 101"),
        ({"type": "page", "userId": "u", "context": "ctx"}, "context must be an object"),
        ({"type": "page", "userId": "u", "timestamp": "soon"}, "is not ISO-8601"),
    ],
)
def test_what_segment_would_drop_or_refuse(message: dict[str, Any], problem: str | None) -> None:
    found = message_problem(message)
    assert found == problem if problem is None else problem in (found or "")
    assert check_message(message) == found


def test_size_is_checked_only_with_the_message() -> None:
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"x": "y" * 40_000}}
    assert message_problem(big) is None
    assert "Segment's limit" in (check_message(big) or "")


def test_signature_is_hex_hmac_sha1() -> None:
    # RFC 2202 test case 2.
    assert signature("Jefe", b"what do ya want for nothing?") == (
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    )


def test_auth_headers() -> None:
    assert auth_headers(None, "t0ken") == {"Authorization": "Bearer t0ken"}
    assert auth_headers("authorization", "t0ken") == {"Authorization": "Bearer t0ken"}
    assert auth_headers("X-API-KEY", "t0ken") == {"X-API-KEY": "t0ken"}


# ---------------------------------------------------------------- checkpoint


def test_ranges_merge_and_contain() -> None:
    ranges = Ranges()
    ranges.add(10, 20)
    ranges.add(30, 40)
    ranges.add(0, 10)
    assert ranges.pairs() == [(0, 20), (30, 40)]
    ranges.add(15, 35)
    assert ranges.pairs() == [(0, 40)]
    ranges.add(50, 50)
    assert ranges.pairs() == [(0, 40)]
    assert 0 in ranges and 39 in ranges and 40 not in ranges and -1 not in ranges


HEADER = {"key": "k1", "files": [{"name": "a", "size": 10, "head": "h"}]}


def test_checkpoint_survives_a_torn_tail_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "c.checkpoint"
    ck = Checkpoint.open(path, HEADER, resume=False)
    ck.commit(0, 5)
    ck.commit(10, 20, failed=3, rejected=1)
    # A crash in the middle of the next line.
    ck._stream.write(b'{"done":[5,')  # type: ignore[union-attr]
    ck._stream.flush()  # type: ignore[union-attr]
    ck.close()
    header, pairs, undelivered = read_journal(path)
    assert header["key"] == "k1" and pairs == [(0, 5), (10, 20)]
    assert undelivered == {"failed": 3, "rejected": 1}
    again = Checkpoint.open(path, HEADER, resume=True)
    assert again.done.pairs() == [(0, 5), (10, 20)]
    assert again.undelivered == {"failed": 3, "rejected": 1}
    again.close()
    # Compacted on resume: the torn line is gone, the counts kept.
    assert path.read_bytes().count(b"\n") == 4
    assert read_journal(path)[2] == {"failed": 3, "rejected": 1}
    fresh = Checkpoint.open(path, HEADER, resume=False)
    assert not fresh.done
    fresh.close()


def test_checkpoint_refuses_another_run_or_changed_input(tmp_path: Path) -> None:
    path = tmp_path / "c.checkpoint"
    Checkpoint.open(path, HEADER, resume=False).close()
    with pytest.raises(UsageError, match="another replay"):
        Checkpoint.open(path, {**HEADER, "key": "k2"}, resume=True)
    changed = {**HEADER, "files": [{"name": "a", "size": 10, "head": "other"}]}
    with pytest.raises(UsageError, match="has changed"):
        Checkpoint.open(path, changed, resume=True)
    grown = {**HEADER, "files": [{"name": "a", "size": 99, "head": "h"}]}
    Checkpoint.open(path, grown, resume=True).close()
    (tmp_path / "junk").write_text("hello\n")
    with pytest.raises(UsageError, match="not a replay checkpoint"):
        Checkpoint.open(tmp_path / "junk", HEADER, resume=True)


def test_checkpoint_group_commit_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "c.checkpoint"
    ck = Checkpoint.open(path, HEADER, resume=False)
    synced = []
    ck.before_write.append(lambda: synced.append(1))

    def commit_block(n: int) -> None:
        for i in range(100):
            ck.commit(n * 100 + i, n * 100 + i + 1)

    threads = [threading.Thread(target=commit_block, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ck.close()
    assert Ranges(read_journal(path)[1]).pairs() == [(0, 800)]
    assert 1 <= len(synced) <= 800


# ---------------------------------------------------------------- error files


def test_error_log_lines_unwrap_to_the_event(tmp_path: Path) -> None:
    log = ErrorLog(tmp_path / "dl.ndjson", "segment")
    event = {"type": "track", "event": "Opened", "userId": "u", "messageId": "m"}
    log.write("HTTP 400", event=event, source="in.ndjson", line=3, index=2, status=400)
    log.write("not valid JSON", source="in.ndjson", line=4, index=3)
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "dl.ndjson").read_text().splitlines()]
    assert lines[0]["error"]["reason"] == "HTTP 400" and lines[0]["error"]["line"] == 3
    assert unwrap(lines[0]) == event
    assert unwrap(lines[1]) is None
    assert unwrap(event) is event
    assert (tmp_path / "dl.ndjson").stat().st_mode & 0o777 == 0o600
    assert log.count == 2
    nothing = ErrorLog(None, "segment")
    nothing.write("x")
    nothing.close()
    assert nothing.count == 1


# ------------------------------------------------------------------ the result


def test_a_replay_result_says_its_exit_and_why() -> None:
    def result(**counts: Any) -> ReplayResult:
        return ReplayResult("webhook", "https://h/hook", dead_letter="dead.ndjson", **counts)

    done = result(read=3, sent=3)
    assert (done.exit_code, done.problem) == (ExitCode.OK, None)
    refused = result(read=4, sent=1, failed=3, unreachable=2)
    assert refused.exit_code == ExitCode.REFUSED
    assert refused.problem == "3 events not delivered: 3 failed (in dead.ndjson)"
    unanswered = result(read=2, sent=1, failed=1, unreachable=1)
    assert unanswered.exit_code == ExitCode.UNREACHABLE
    assert unanswered.problem == "1 event not delivered: 1 failed (in dead.ndjson)"
    pending = result(read=2, sent=1, pending=1, failed_before=2)
    assert pending.exit_code == ExitCode.FAILURE
    assert pending.problem == (
        "3 events not delivered: 1 pending, 2 in earlier runs of this checkpoint"
    )
    dry = ReplayResult("segment", "https://h/v1/batch", dry_run=True, read=2, rejected=2)
    assert dry.exit_code == ExitCode.FAILURE
    assert dry.problem == "2 events would not be delivered: 2 would be rejected"
    # An interruption outranks what it left undelivered; a bad record outranks both.
    stopped = result(read=2, pending=2, interrupted=True)
    assert stopped.exit_code == ExitCode.INTERRUPTED
    assert stopped.problem == "interrupted; run the same command with --resume to continue"
    bad = DataError("bad JSON", source="in.ndjson", line=7, hint="fix it")
    ended = result(read=2, pending=2, interrupted=True, stopped_by=bad)
    assert ended.exit_code == ExitCode.DATA
    assert ended.problem == "in.ndjson:7: bad JSON (hint: fix it)"
    assert ended.as_json()["error"] == "in.ndjson:7: bad JSON"
