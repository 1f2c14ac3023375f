"""`cmdai replay` against an endpoint that is down: it stops (exit 6) rather than crawls,
leaving what was not acknowledged for `--resume`; and a server's wait is capped."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.replay.delivery_control import Breaker
from tests.conftest import SHARED_SECRET, TOKEN, WRITE_KEY, Cli
from tests.fault_server import DROP, OK, Fault, FaultServer, SilentServer, slow, status
from tests.test_replay_cli import make_events, write_ndjson
from tests.test_replay_exit_codes import closed_port_url

TIMEOUT = 0.5
# Tripping needs failures reaching back 2x --timeout; one more wave of time-outs, the
# grace for what is in flight, and room for a busy machine.
BOUND = 2 * TIMEOUT + TIMEOUT + 0.5 + 3.0
TARGETS = {
    "segment": ("segment", "--host"),
    "webhook": ("webhook", "--url"),
    "bulk-identify": ("bulk", "--host"),
}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    monkeypatch.setenv("CMDAI_COMMANDAI_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_ORG_ID", "org42")


def webhook(cli: Cli, source: Path, url: str, checkpoint: Path, *more: str) -> Any:
    return cli(
        "replay", str(source), "--to", "webhook", "--url", url,
        "--checkpoint", str(checkpoint), "--timeout", str(TIMEOUT),
        "--max-retries", "1", "--backoff", "0.05", "--concurrency", "4", "--json", *more,
    )  # fmt: skip


def test_a_webhook_that_stops_answering_stops_the_run_and_resume_sends_the_rest_once(
    cli: Cli, tmp_path: Path
) -> None:
    events = make_events(300)
    ids = {e["messageId"] for e in events}
    source = write_ndjson(tmp_path / "in.ndjson", events)
    checkpoint = tmp_path / "replay.checkpoint"
    # Healthy for 60 requests, then silent for longer than the test lasts, until it
    # comes back (the checkpoint belongs to this URL).
    hang = slow(60)
    up = [False]
    with FaultServer(
        kind="webhook",
        secret=SHARED_SECRET,
        fault_for=lambda n: OK if n < 60 or up[0] else hang,
    ) as server:
        started = time.monotonic()
        result = webhook(cli, source, server.url, checkpoint)
        elapsed = time.monotonic() - started
        first = set(server.ids)
        assert result.exit_code == 6, result.stderr
        assert elapsed < BOUND, elapsed
        summary = json.loads(result.stdout)
        assert summary["endpoint_down"] and "looks down" in result.stderr
        assert "--resume" in result.stderr and "Traceback" not in result.stderr
        # Only what the server acknowledged is done; nothing went to the dead letters.
        assert summary["sent"] == len(first) == 60
        assert summary["failed"] == 0 and summary["dead_letter"] is None
        assert summary["pending"] == 300 - 60
        up[0] = True
        resumed = webhook(cli, source, server.url, checkpoint, "--resume")
        assert resumed.exit_code == 0, resumed.stderr
        second = set(server.ids) - first
        assert server.duplicates == 0
    assert first.isdisjoint(second) and first | set(second) == ids
    assert json.loads(resumed.stdout)["sent"] == 240


def test_a_server_that_never_answers_trips_within_a_bound(cli: Cli, tmp_path: Path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(1000))
    with SilentServer() as silent:
        started = time.monotonic()
        result = webhook(cli, source, silent.url, tmp_path / "cp")
        elapsed = time.monotonic() - started
    assert result.exit_code == 6, result.stderr
    assert elapsed < BOUND, elapsed
    summary = json.loads(result.stdout)
    assert summary["sent"] == 0 and summary["failed"] == 0
    assert summary["pending"] == 1000 and summary["endpoint_down"]


@pytest.mark.parametrize("target", list(TARGETS))
def test_a_refused_port_stops_the_run_quickly(cli: Cli, tmp_path: Path, target: str) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(200))
    _, flag = TARGETS[target]
    started = time.monotonic()
    result = cli(
        "replay", str(source), "--to", target, flag, closed_port_url(),
        "--timeout", str(TIMEOUT), "--backoff", "0.05", "--batch-size", "10", "--json",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == 6, result.stderr
    assert elapsed < BOUND, elapsed
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0 and summary["sent"] == 0 and summary["pending"] > 0
    assert "looks down" in result.stderr and "Traceback" not in result.stderr


def test_segment_through_its_worker_process_stops_too(tmp_path: Path) -> None:
    # A real process: the worker is forked only when no other thread runs.
    source = write_ndjson(tmp_path / "in.ndjson", make_events(500))
    with SilentServer() as silent:
        command = [
            sys.executable, "-m", "cmdai_cli", "replay", str(source),
            "--to", "segment", "--host", silent.url, "--checkpoint", str(tmp_path / "cp"),
            "--timeout", str(TIMEOUT), "--batch-size", "20", "--json",
        ]  # fmt: skip
        started = time.monotonic()
        proc = subprocess.run(
            command,
            capture_output=True,
            env=dict(os.environ),
            timeout=30,
        )
        elapsed = time.monotonic() - started
    assert proc.returncode == 6, proc.stderr
    assert elapsed < BOUND + 1.5, elapsed  # the interpreter's start-up
    assert b"looks down" in proc.stderr and b"Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["pending"] == 500 and summary["failed"] == 0


def test_a_flaky_server_never_trips(cli: Cli, tmp_path: Path) -> None:
    events = make_events(300)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    # One request in ten answers 503 or drops the connection, at random: about thirty
    # failures in all, many more than a run needs, but not eight without an answer.
    rng = random.Random(21)

    def fault(_n: int) -> Fault:
        draw = rng.random()
        return status(503) if draw < 0.05 else DROP if draw < 0.1 else OK

    with FaultServer(kind="webhook", secret=SHARED_SECRET, fault_for=fault) as server:
        result = webhook(cli, source, server.url, tmp_path / "cp", "--max-retries", "5")
        delivered = set(server.ids)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["endpoint_down"] is None
    assert delivered == {e["messageId"] for e in events}


def test_a_huge_retry_after_is_capped_and_said(cli: Cli, tmp_path: Path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(30))
    with FaultServer(
        kind="webhook", secret=SHARED_SECRET, faults=[status(429, retry_after="1000000")] * 4
    ) as server:
        started = time.monotonic()
        result = webhook(cli, source, server.url, tmp_path / "cp", "--max-wait", "1")
        elapsed = time.monotonic() - started
        delivered = server.delivered
    assert result.exit_code == 0, result.stderr
    assert delivered == 30
    # Waited the cap (a second), not the eleven days asked.
    assert elapsed < 6, elapsed
    warnings = [line for line in result.stderr.splitlines() if "asked to wait" in line]
    assert len(warnings) == 1, result.stderr
    assert "1e+06 s" in warnings[0] and "1 s at most" in warnings[0]


def test_the_breaker_counts_a_run_across_the_pool() -> None:
    now = [0.0]
    breaker = Breaker(1.0, clock=lambda: now[0])
    for i in range(7):
        now[0] = 0.5 + i * 0.3
        assert not breaker.answered(None, sent=i * 0.3)
    breaker.answered(200, sent=2.0)  # an answer ends the run
    assert breaker.failures == 0
    now[0] = 3.0
    for _ in range(8):
        tripped = breaker.answered(None, sent=2.5)
    assert not tripped, "eight at once reach back only 0.5 s of the 2 s asked"
    now[0] = 4.6
    assert breaker.answered(None, sent=4.0)
    # 5xx answers alone need a run four times as long.
    breaker = Breaker(1.0, clock=lambda: now[0])
    now[0] = 10.0
    assert not any(breaker.answered(503, sent=7.0) for _ in range(31))
    assert breaker.answered(503, sent=7.0)


def test_a_server_closed_for_longer_than_the_run_stops_it(cli: Cli, tmp_path: Path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(1000))
    with FaultServer(
        kind="webhook",
        secret=SHARED_SECRET,
        fault_for=lambda _n: status(429, retry_after="1000000"),
    ) as server:
        started = time.monotonic()
        result = webhook(cli, source, server.url, tmp_path / "cp", "--max-wait", "1")
        elapsed = time.monotonic() - started
        assert server.delivered == 0
    assert result.exit_code == 6, result.stderr
    assert elapsed < BOUND, elapsed
    summary = json.loads(result.stdout)
    assert summary["pending"] == 1000 and summary["failed"] == 0
    assert sum("asked to wait" in line for line in result.stderr.splitlines()) == 1
    assert "looks down" in result.stderr
