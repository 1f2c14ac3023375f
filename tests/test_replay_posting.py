"""Segment batches posted from forked workers: answers, a dying worker, a killed parent."""

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
import json, os, signal, sys
from cmdai_cli.replay.posting import Pool, available

url, key = sys.argv[1], sys.argv[2]
ready = available()
pool = Pool(2, write_key=key, host=url, timeout=5.0, gzip=False)

def message(n):
    return {"type": "track", "userId": "u", "event": "E", "messageId": f"m{n}"}

answers = [pool.post([message(0), message(1)])]
first = pool.pids
for pid in first:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
answers += [pool.post([message(n)]) for n in range(2, 6)]
pool.close()
print(json.dumps({
    "available": ready,
    "answers": [[a.status, a.http_status] for a in answers],
    "replaced": len(set(pool.pids) - set(first)),
}))
"""


def run_script(url: str, key: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, key],
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


def test_answers_come_back_and_a_dead_worker_is_replaced() -> None:
    with FaultServer(write_key=WRITE_KEY, faults=[OK, status(500)]) as server:
        result = run_script(server.url, WRITE_KEY)
        server.settle()
        assert result["available"] is True
        answers = result["answers"]
        assert answers[0] == ["accepted", 200]
        # Both workers were killed: each answers "unreachable" once (the batch may or
        # may not have gone) and is replaced; the replacements carry on.
        assert answers[1:3] == [["unreachable", None], ["unreachable", None]]
        assert answers[3:] == [["refused", 500], ["accepted", 200]]
        assert result["replaced"] == 2
        assert set(server.ids) == {"m0", "m1", "m5"}


def test_a_refusal_is_reported_with_its_status() -> None:
    with FaultServer(write_key=WRITE_KEY) as server:
        result = run_script(server.url, "wk_WRONGKEY_0123456789")
        assert {tuple(a) for a in result["answers"][3:]} == {("refused", 401)}


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
        assert len(workers) == 3
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived its replay"
            time.sleep(0.05)
