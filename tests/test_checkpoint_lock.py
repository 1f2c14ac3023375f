"""Two replays sharing one checkpoint: the second refuses at once, naming the first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_SECRET
from tests.fault_server import FaultServer
from tests.test_replay_cli import make_events, write_ndjson

pytestmark = pytest.mark.timeout(20)


class HeldServer(FaultServer):
    """A webhook that answers the first `free` requests, then holds each answer until
    `release` is set: the first replay is surely still running when the second starts."""

    free = 20
    release = threading.Event()

    def _answer(self, handler: Any) -> None:
        if len(self.requests) >= self.free:
            self.release.wait(10)
        super()._answer(handler)


def start(source: Path, url: str, checkpoint: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CMDAI_WEBHOOK_SHARED_SECRET": SHARED_SECRET}
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "cmdai_cli", "replay", str(source), "--to", "webhook"),
            *("--url", url, "--checkpoint", str(checkpoint), "--concurrency", "2", *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_replay_on_the_same_checkpoint_exits_at_once_naming_the_first(
    tmp_path: Path, resume: bool
) -> None:
    events = make_events(200)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    checkpoint = tmp_path / "shared.checkpoint"
    extra = ("--resume",) if resume else ()
    server = HeldServer(kind="webhook", secret=SHARED_SECRET)
    server.release = threading.Event()
    with server:
        first = start(source, server.url, checkpoint, *extra)
        deadline = time.monotonic() + 15
        while server.delivered < HeldServer.free:
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline, "the first replay made no progress"
            time.sleep(0.005)
        second = start(source, server.url, checkpoint, *extra)
        _, err = second.communicate(timeout=10)
        assert first.poll() is None, "the first run ended before the second was refused"
        server.release.set()
        assert second.returncode == 2, err
        assert f"in use by process {first.pid}".encode() in err
        _, err_first = first.communicate(timeout=15)
        assert first.returncode == 0, err_first
        server.settle()
        assert server.duplicates == 0
        assert set(server.ids) == {e["messageId"] for e in events}
        # Once the first has ended, the checkpoint is free again (and all of it done).
        again = start(source, server.url, checkpoint, "--resume")
        _, err = again.communicate(timeout=15)
        assert again.returncode == 0, err
        server.settle()
        assert server.duplicates == 0
