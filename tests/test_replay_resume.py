"""A replay killed part-way, then `--resume`: nothing lost, duplicates within the window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import WRITE_KEY
from tests.fault_server import FaultServer
from tests.test_replay_cli import make_events, write_ndjson

BATCH = 20
CONCURRENCY = 2


def start_replay(source: Path, url: str, checkpoint: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cmdai_cli",
            "replay",
            str(source),
            "--to",
            "segment",
            "--host",
            url,
            "--checkpoint",
            str(checkpoint),
            "--batch-size",
            str(BATCH),
            "--concurrency",
            str(CONCURRENCY),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


def wait_until_delivered(server: FaultServer, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while server.delivered < count:
        assert proc.poll() is None, "the replay finished before it could be stopped"
        assert time.monotonic() < deadline, "the replay made no progress"
        time.sleep(0.005)


@pytest.fixture(autouse=True)
def _write_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)


def test_sigkill_then_resume_loses_nothing(cli, tmp_path) -> None:
    events = make_events(1000)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    checkpoint = tmp_path / "replay.checkpoint"
    with FaultServer(write_key=WRITE_KEY, delay=0.02) as server:
        proc = start_replay(source, server.url, checkpoint)
        wait_until_delivered(server, 300, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        server.settle()
        before = server.delivered
        assert before < 1000
        result = cli(
            "replay",
            str(source),
            "--to",
            "segment",
            "--host",
            server.url,
            "--checkpoint",
            str(checkpoint),
            "--batch-size",
            str(BATCH),
            "--resume",
            "--json",
        )
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert set(server.ids) == {e["messageId"] for e in events}
        # Only batches in flight at the kill (one per worker) can arrive twice.
        assert server.duplicates <= CONCURRENCY * BATCH
        assert summary["already_done"] >= before - CONCURRENCY * BATCH
        assert summary["sent"] + summary["already_done"] == 1000
        assert summary["sent"] == server.delivered - before


def test_sigterm_stops_cleanly_and_resume_finishes(cli, tmp_path) -> None:
    events = make_events(1000)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    checkpoint = tmp_path / "replay.checkpoint"
    with FaultServer(write_key=WRITE_KEY, delay=0.02) as server:
        proc = start_replay(source, server.url, checkpoint)
        wait_until_delivered(server, 200, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        server.settle()
        stopped = json.loads(out)
        assert stopped["interrupted"] and stopped["pending"] > 0
        assert stopped["sent"] == server.delivered
        assert b"--resume" in err
        result = cli(
            "replay",
            str(source),
            "--to",
            "segment",
            "--host",
            server.url,
            "--checkpoint",
            str(checkpoint),
            "--resume",
            "--json",
        )
        assert result.exit_code == 0, result.stderr
        assert set(server.ids) == {e["messageId"] for e in events}
        # A clean stop records every acknowledged batch: nothing is sent twice.
        assert server.duplicates == 0


def test_resume_refuses_a_changed_input(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(10))
    with FaultServer(write_key=WRITE_KEY) as server:
        args = ["replay", str(source), "--to", "segment", "--host", server.url]
        assert cli(*args).exit_code == 0
        write_ndjson(source, make_events(10, start=50))
        result = cli(*args, "--resume")
        assert result.exit_code == 2 and "has changed" in result.stderr
        # Without --resume it starts over.
        assert cli(*args).exit_code == 0


def test_resume_without_a_checkpoint_starts_from_the_beginning(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(10))
    with FaultServer(write_key=WRITE_KEY) as server:
        result = cli(
            "replay", str(source), "--to", "segment", "--host", server.url, "--resume", "--json"
        )
        assert result.exit_code == 0 and json.loads(result.stdout)["sent"] == 10
        again = cli(
            "replay", str(source), "--to", "segment", "--host", server.url, "--resume", "--json"
        )
        summary = json.loads(again.stdout)
        assert summary["sent"] == 0 and summary["already_done"] == 10
        assert server.delivered == 10


def test_a_resumed_run_still_reports_what_earlier_runs_did_not_deliver(cli, tmp_path) -> None:
    from tests.fault_server import status

    events = make_events(30)
    text = "".join(json.dumps(e) + "\n" for e in events) + "not json\n"
    source = tmp_path / "in.ndjson"
    source.write_text(text)
    args = [
        "replay",
        str(source),
        "--to",
        "segment",
        "--batch-size",
        "10",
        "--concurrency",
        "1",
        "--on-error",
        "skip",
        "--json",
    ]
    with FaultServer(write_key=WRITE_KEY, faults=[status(400)]) as server:
        first = cli(*args, "--host", server.url)
        assert first.exit_code == 5  # Segment refused a batch (400)
        summary = json.loads(first.stdout)
        assert summary["failed"] == 10 and summary["rejected"] == 1 and summary["sent"] == 20
        again = cli(*args, "--host", server.url, "--resume")
        # This run was refused nothing: the earlier runs' losses are a partial failure.
        assert again.exit_code == 1
        resumed = json.loads(again.stdout)
        assert resumed["sent"] == 0 and resumed["already_done"] == 31
        assert resumed["failed_before"] == 10 and resumed["rejected_before"] == 1
        assert "11 in earlier runs" in again.stderr
