"""Segment batches posted from a forked worker: answers, a dying worker, a killed parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.replay import posting
from tests.conftest import WRITE_KEY
from tests.fault_server import OK, FaultServer, status
from tests.test_replay_cli import make_events, write_ndjson

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux")

# Run in a fresh interpreter: forking the test process, with its servers' threads, is
# exactly what the pool refuses to do.
SCRIPT = r"""
import json, os, signal, sys, threading, time
from cmdai_cli.replay.posting import Pool, available

def body(*messages):
    return json.dumps(list(messages)).encode()

url, key, slow = sys.argv[1], sys.argv[2], sys.argv[3] == "slow"
ready = available()
pool = Pool(2, write_key=key, host=url, timeout=5.0, gzip=False)

def message(n):
    return {"type": "track", "userId": "u", "event": "E", "messageId": f"m{n}"}

answers = []
if slow:
    # The worker dies while both batches are in flight: their answers are lost.
    posts = [threading.Thread(target=lambda n=n: answers.append(pool.post(body(message(n)))))
             for n in range(2)]
    for post in posts:
        post.start()
    # Both batches handed to the worker (the server holds each answer for seconds).
    while len(pool._waiting) < 2:
        time.sleep(0.001)
    os.kill(pool.process.pid, signal.SIGKILL)
    for post in posts:
        post.join()
else:
    answers.append(pool.post(body(message(0), message(1))))
    answers.append(pool.post(body(message(2))))
    os.kill(pool.process.pid, signal.SIGKILL)
    pool.process.join()
    # The answer reader ends once it has read end-of-file from the dead worker's pipe,
    # and only then does the pool know to send from here.
    pool._reader.join()
    # With the worker gone, the rest is sent from this process.
    answers += [pool.post(body(message(n))) for n in range(3, 5)]
pool.close()
print(json.dumps({
    "available": ready,
    "answers": [[a.status, a.http_status] for a in answers],
}))
"""


def run_script(url: str, key: str, mode: str = "fast") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, key, mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_not_available_while_another_thread_runs() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert posting.available() is False
    finally:
        stop.set()
        thread.join()


def test_answers_come_back_and_a_dead_worker_is_taken_over() -> None:
    with FaultServer(write_key=WRITE_KEY, faults=[OK, status(503), status(500), OK]) as server:
        result = run_script(server.url, WRITE_KEY)
        server.settle()
        assert result["available"] is True
        assert result["answers"] == [
            ["accepted", 200],
            ["refused", 503],
            ["refused", 500],
            ["accepted", 200],
        ]
        assert set(server.ids) == {"m0", "m1", "m4"}


def test_batches_in_flight_when_the_worker_dies_are_unanswered() -> None:
    with FaultServer(write_key=WRITE_KEY, delay=3.0) as server:
        result = run_script(server.url, WRITE_KEY, "slow")
        assert result["answers"] == [["unreachable", None], ["unreachable", None]]


def test_a_refusal_is_reported_with_its_status() -> None:
    with FaultServer(write_key=WRITE_KEY) as server:
        result = run_script(server.url, "wk_WRONGKEY_0123456789")
        assert {tuple(a) for a in result["answers"]} == {("refused", 401)}


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_workers_end_when_the_replay_is_killed(tmp_path: Path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(2000))
    env = {**os.environ, "CMDAI_WRITE_KEY": WRITE_KEY}
    with FaultServer(write_key=WRITE_KEY, delay=0.05) as server:
        args = ["replay", str(source), "--to", "segment", "--host", server.url]
        args += ["--batch-size", "10", "--concurrency", "3", "--checkpoint", str(tmp_path / "cp")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "cmdai_cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while server.delivered < 50:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        workers = children_of(proc.pid)
        assert len(workers) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived its replay"
            time.sleep(0.05)
