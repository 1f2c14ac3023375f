"""Replay as a new user runs it: stdin, rewritten files, running twice, dry runs, files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.errors import UsageError
from cmdai_cli.events.inputs import Input
from cmdai_cli.replay.checkpoint import Checkpoint, fingerprint
from tests.conftest import WRITE_KEY
from tests.fault_server import FaultServer, status
from tests.test_replay_cli import make_events, write_ndjson


@pytest.fixture(autouse=True)
def _write_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)


def ndjson(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


# ---------------------------------------------------------------- stdin


def test_resume_from_stdin_is_a_usage_error_and_skips_nothing(cli, tmp_path) -> None:
    events = make_events(110)
    with FaultServer(kind="webhook") as server:
        args = ["replay", "-", "--to", "webhook", "--url", server.url]
        first = cli(*args, input=ndjson(events[:5]))
        assert first.exit_code == 0, first.stderr
        assert server.delivered == 5
        # Other events at the same positions: none may be taken as done.
        later = ndjson(events[99:110])
        result = cli(*args, "--resume", input=later)
        assert result.exit_code == 2
        assert "stdin" in result.stderr and "save the input to a file" in result.stderr
        dry = cli(*args, "--resume", "--dry-run", input=later)
        assert dry.exit_code == 2
        assert server.delivered == 5
        # Without --resume stdin is sent whole, and no warning points at --resume.
        again = cli(*args, input=later)
        assert again.exit_code == 0 and server.delivered == 16
        assert "--resume" not in again.stderr


# ---------------------------------------------------------------- a changed file


def big_events(n: int) -> list[dict[str, Any]]:
    events = make_events(n)
    for event in events:
        event["properties"] = {"note": "x" * 400}
    return events


def test_a_file_rewritten_to_the_same_size_near_its_end_is_refused(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", big_events(400))
    assert source.stat().st_size > 3 * 64 * 1024
    with FaultServer(kind="webhook") as server:
        args = ["replay", str(source), "--to", "webhook", "--url", server.url]
        assert cli(*args).exit_code == 0
        data = bytearray(source.read_bytes())
        at = data.rindex(b'"user-')
        data[at + 1 : at + 5] = b"USER"  # same length, a record near the end
        source.write_bytes(bytes(data))
        result = cli(*args, "--resume")
        assert result.exit_code == 2 and "has changed" in result.stderr
        # Per target: the webhook does not deduplicate.
        assert "delivered again" in result.stderr
        assert "messageIds make re-sending safe" not in result.stderr
        assert server.delivered == 400


def test_the_refusal_says_segment_drops_repeated_message_ids(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(10))
    with FaultServer(write_key=WRITE_KEY) as server:
        args = ["replay", str(source), "--to", "segment", "--host", server.url]
        assert cli(*args).exit_code == 0
        write_ndjson(source, make_events(10, start=50))
        result = cli(*args, "--resume")
        assert result.exit_code == 2 and "messageId" in result.stderr
        assert "delivered again" not in result.stderr


def header_for(path: Path) -> dict[str, Any]:
    item = Input(path.name, path=path)
    return {"key": "k", "inputs": [str(path)], "target": "webhook", "files": fingerprint([item])}


def test_checkpoint_checks_mtime_and_the_tail_before_the_old_end(tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"a" * 200_000)
    journal = tmp_path / "c.checkpoint"
    Checkpoint.open(journal, header_for(source), resume=False).close()
    Checkpoint.open(journal, header_for(source), resume=True).close()
    # Same bytes, touched: at the same size the mtime is all that tells.
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(UsageError, match="has changed"):
        Checkpoint.open(journal, header_for(source), resume=True)
    # Grown by appending: the old content is unchanged, so it resumes.
    Checkpoint.open(journal, header_for(source), resume=False).close()
    with open(source, "ab") as handle:
        handle.write(b"b" * 100)
    Checkpoint.open(journal, header_for(source), resume=True).close()
    # Grown, with a byte changed just before the old end: refused.
    Checkpoint.open(journal, header_for(source), resume=False).close()
    data = bytearray(source.read_bytes())
    data[-150] = ord("c")
    data += b"d" * 10
    source.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="has changed"):
        Checkpoint.open(journal, header_for(source), resume=True)


# ---------------------------------------------------------------- running again


def test_running_a_finished_replay_again_warns_and_resends(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(100))
    with FaultServer(kind="webhook") as server:
        args = ["replay", str(source), "--to", "webhook", "--url", server.url]
        first = cli(*args)
        assert first.exit_code == 0 and "warning" not in first.stderr
        again = cli(*args)
        # Re-sending on purpose is allowed, but not in silence.
        assert again.exit_code == 0 and server.delivered == 200
        assert "cmdai: warning:" in again.stderr
        assert "100 records" in again.stderr and "--resume skips them" in again.stderr
        resumed = cli(*args, "--resume")
        assert resumed.exit_code == 0 and "warning" not in resumed.stderr
        assert server.delivered == 200


def test_a_dry_run_applies_the_checkpoint_checks(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "b.ndjson", make_events(10))
    checkpoint = tmp_path / "b.cp"
    with FaultServer(kind="webhook") as server:
        written = cli(
            "replay", str(source), "--to", "webhook", "--url", server.url,
            "--checkpoint", str(checkpoint),
        )  # fmt: skip
        assert written.exit_code == 0
    dry = cli(
        "replay", str(source), "--to", "segment", "--checkpoint", str(checkpoint),
        "--resume", "--dry-run",
    )  # fmt: skip
    assert dry.exit_code == 2 and "written for another replay" in dry.stderr


# ---------------------------------------------------------------- what is reported


def test_a_dry_run_says_what_would_be_rejected(cli, tmp_path) -> None:
    events = make_events(3)
    del events[1]["userId"]
    source = write_ndjson(tmp_path / "huge.ndjson", events)
    result = cli("replay", str(source), "--to", "segment", "--on-error", "skip", "--dry-run")
    # As the docs say: a dry run exits 1 when events would be rejected.
    assert result.exit_code == 1
    assert "None" not in result.stderr
    assert "1 event would not be delivered: 1 would be rejected" in result.stderr
    assert not (tmp_path / "state" / "replay").exists() or not list(
        (tmp_path / "state" / "replay").glob("*.rejects.ndjson")
    )


def test_failed_reasons_do_not_split_on_the_wait_drawn(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(4))
    with FaultServer(write_key=WRITE_KEY, fault_for=lambda n: status(503)) as server:
        result = cli(
            "replay", str(source), "--to", "segment", "--host", server.url,
            "--batch-size", "1", "--backoff", "1000", "--max-wait", "0.001", "--json",
        )  # fmt: skip
    assert result.exit_code == 6
    reasons = json.loads(result.stdout)["failed_reasons"]
    assert len(reasons) == 1 and list(reasons.values()) == [4], reasons
    assert "would pass the limit" in next(iter(reasons))


def test_reject_lines_keep_the_event_and_replay_feeds_those_back(cli, tmp_path) -> None:
    events = make_events(3)
    del events[1]["userId"]
    source = tmp_path / "in.ndjson"
    source.write_text(ndjson(events) + "not json\n")
    rejects = tmp_path / "rejects.ndjson"
    with FaultServer(write_key=WRITE_KEY) as server:
        first = cli(
            "replay", str(source), "--to", "segment", "--host", server.url,
            "--on-error", "skip", "--rejects", str(rejects),
        )  # fmt: skip
        assert first.exit_code == 1
        lines = [json.loads(line) for line in rejects.read_text().splitlines()]
        assert [sorted(line) for line in lines] == [["error", "event"], ["error"]]
        assert lines[0]["event"]["messageId"] == events[1]["messageId"]
        assert lines[1]["error"]["line"] == 4 and lines[1]["error"]["source"] == str(source)
        # Fed back: the event is read again (still without a user: rejected again), the
        # unreadable record's line has nothing to send.
        again = cli(
            "replay", str(rejects), "--to", "segment", "--host", server.url,
            "--on-error", "skip", "--rejects", str(tmp_path / "again.ndjson"), "--json",
        )  # fmt: skip
        summary = json.loads(again.stdout)
        assert summary["read"] == 2 and summary["rejected"] == 1 and summary["ignored"] == 1
