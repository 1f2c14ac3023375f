"""Stopping a webhook replay: killed with many requests in flight, then `--resume`; Ctrl-C
and SIGTERM against a service that never answers; a second Ctrl-C. Against real
processes and sockets; the only time bounds are generous ones on how long a stop takes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import SHARED_SECRET
from tests.fault_server import FaultServer, slow
from tests.test_replay_cli import make_events, write_ndjson

CONCURRENCY = 32


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)


def start(source: Path, url: str, checkpoint: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "cmdai_cli", "replay", str(source), "--to", "webhook"]
    argv += ["--url", url, "--checkpoint", str(checkpoint), "--json", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert proc.poll() is None, f"the replay ended before {what}"
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


def read_line(stream: IO[bytes] | None) -> bytes:
    assert stream is not None
    return stream.readline()


def test_sigkill_with_many_in_flight_then_resume_is_exact(cli, tmp_path) -> None:
    events = make_events(2000)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    checkpoint = tmp_path / "replay.checkpoint"
    with FaultServer(kind="webhook", secret=SHARED_SECRET, delay=0.01) as server:
        proc = start(source, server.url, checkpoint, "--concurrency", str(CONCURRENCY))
        wait_until(lambda: server.delivered >= 600, proc, "600 were delivered")
        proc.kill()
        proc.wait(10)
        server.settle()
        before = server.delivered
        assert before < 2000
        result = cli(
            "replay",
            str(source),
            "--to",
            "webhook",
            "--url",
            server.url,
            "--checkpoint",
            str(checkpoint),
            "--concurrency",
            str(CONCURRENCY),
            "--resume",
            "--json",
        )
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert set(server.ids) == {e["messageId"] for e in events}
        assert server.bad_signatures == 0
        # Sent twice: at most what was in flight at the kill (the limit, and up to
        # twice as many stragglers), one event each.
        assert server.duplicates <= 3 * CONCURRENCY
        assert summary["sent"] + summary["already_done"] == 2000
        assert summary["sent"] == server.delivered - before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_is_prompt_when_the_service_never_answers(tmp_path, sig) -> None:
    events = make_events(50)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    checkpoint = tmp_path / "replay.checkpoint"
    hang = slow(3600)
    with FaultServer(kind="webhook", secret=SHARED_SECRET, fault_for=lambda n: hang) as server:
        proc = start(source, server.url, checkpoint, "--timeout", "60", "--concurrency", "8")
        wait_until(lambda: len(server.requests) >= 8, proc, "eight requests were in flight")
        stopped_at = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - stopped_at
        assert proc.returncode == 130, err
        summary = json.loads(out)
        assert summary["interrupted"] and summary["sent"] == 0
        # What was in flight, waiting or queued stays pending (the reader may not have
        # read the last records yet: they are not counted at all).
        assert summary["pending"] == summary["read"] > 0
        assert b"--resume" in err
        # Generous: the stop itself waits about half a second for answers.
        assert took < 10


def test_a_second_ctrl_c_stops_at_once(tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(50))
    checkpoint = tmp_path / "replay.checkpoint"
    hang = slow(3600)
    with FaultServer(kind="webhook", secret=SHARED_SECRET, fault_for=lambda n: hang) as server:
        proc = start(source, server.url, checkpoint, "--timeout", "60", "--concurrency", "8")
        wait_until(lambda: len(server.requests) >= 8, proc, "eight requests were in flight")
        proc.send_signal(signal.SIGINT)
        assert b"Ctrl-C again" in read_line(proc.stderr)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert out == b""  # no summary: it did not wait for the requests in flight
        assert b"stopped at once" in err and b"--resume" in err
