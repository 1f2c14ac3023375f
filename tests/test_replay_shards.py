"""`cmdai replay --shard`: N processes over one S3 archive, each reading only its own files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.errors import UsageError
from cmdai_cli.events.inputs import Input
from cmdai_cli.replay.options import ReplayOptions
from cmdai_cli.replay.select import Shard, parse_shard, shard_of
from cmdai_cli.replay.setup import split
from tests.conftest import WRITE_KEY
from tests.fault_server import FaultServer
from tests.s3_archive import S3, make_archive, s3, s3_server

__all__ = ["s3", "s3_server"]  # fixtures

BATCH = 20
CONCURRENCY = 2


# ---------------------------------------------------------------- units


def test_auto_takes_k_from_the_job_completion_index() -> None:
    assert parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "0"}) == Shard(1, 4)
    assert parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "3"}) == Shard(4, 4)
    with pytest.raises(UsageError, match="not set"):
        parse_shard("auto/4", {})
    with pytest.raises(UsageError, match="not below 4"):
        parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "4"})
    with pytest.raises(UsageError, match="not a number"):
        parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "x"})


def test_files_are_split_whole_and_the_rate_is_shared() -> None:
    inputs = [Input(f"s3://b/segment-logs/s/{n}.gz", url=f"s3://b/{n}.gz") for n in range(40)]
    seen: list[str] = []
    for k in (1, 2, 3):
        options = ReplayOptions(inputs=[], to="segment", shard=Shard(k, 3), rate=300.0)
        run_options, mine, sharding = split(options, inputs)
        assert sharding is not None and sharding.by == "file"
        assert run_options.shard is None and run_options.rate == 100.0
        assert all(shard_of(i.name, 3) == k for i in mine)
        seen.extend(i.name for i in mine)
    assert sorted(seen) == sorted(i.name for i in inputs)
    # One input: every shard reads it, and picks events by messageId.
    options = ReplayOptions(inputs=[], to="segment", shard=Shard(2, 3))
    run_options, mine, sharding = split(options, inputs[:1])
    assert sharding is not None and sharding.by == "messageId"
    assert run_options.shard == Shard(2, 3) and mine == inputs[:1]


# ---------------------------------------------------------------- processes


def start_shard(
    s3: S3, source: str, url: str, index: int, count: int, *extra: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **s3.env, "CMDAI_WRITE_KEY": WRITE_KEY}
    env["JOB_COMPLETION_INDEX"] = str(index)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cmdai_cli",
            "replay",
            source,
            "--to",
            "segment",
            "--host",
            url,
            "--shard",
            f"auto/{count}",
            "--batch-size",
            str(BATCH),
            "--concurrency",
            str(CONCURRENCY),
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def finish(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    summary: dict[str, Any] = json.loads(out)
    return summary


def test_n_shards_deliver_the_archive_once_each_reading_only_its_own_files(s3: S3) -> None:
    archive = make_archive(s3, days=4, files_per_day=3, events_per_file=30)
    count = 3
    with FaultServer(write_key=WRITE_KEY) as server:
        procs = [start_shard(s3, archive.prefix, server.url, k, count) for k in range(count)]
        summaries = [finish(proc) for proc in procs]
        server.settle()
        assert set(server.ids) == set(archive.events)
        assert server.duplicates == 0
    for k, summary in enumerate(summaries, start=1):
        own = [url for url in archive.objects if shard_of(url, count) == k]
        assert summary["shard"] == f"{k}/{count}" and summary["shard_by"] == "file"
        assert summary["files_read"] == len(own)
        assert summary["bytes_read"] == sum(archive.objects[url] for url in own)
        assert summary["sent"] == summary["read"] == len(archive.ids(own))
    assert sum(s["files_read"] for s in summaries) == len(archive.objects)


def test_a_shard_killed_mid_run_resumes_exactly(s3: S3) -> None:
    archive = make_archive(s3, days=4, files_per_day=4, events_per_file=50)
    count = 2
    own = {k: [u for u in archive.objects if shard_of(u, count) == k] for k in (1, 2)}
    # The shard with more files is the one killed: at least 8 files, 400 events.
    killed = max(own, key=lambda k: len(own[k]))
    other_k = 3 - killed
    mine = archive.ids(own[killed])
    with FaultServer(write_key=WRITE_KEY, delay=0.02) as server:
        first = start_shard(s3, archive.prefix, server.url, killed - 1, count, "--resume")
        deadline = time.monotonic() + 30
        while server.delivered < 100:
            assert first.poll() is None, "the shard finished before it could be stopped"
            assert time.monotonic() < deadline, "the shard made no progress"
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        server.settle()
        before = server.delivered
        assert before < len(mine)
        other = start_shard(s3, archive.prefix, server.url, other_k - 1, count, "--resume")
        resumed = start_shard(s3, archive.prefix, server.url, killed - 1, count, "--resume")
        second, again = finish(other), finish(resumed)
        server.settle()
        assert set(server.ids) == set(archive.events)
        # Only the batches in flight at the kill can have arrived twice.
        assert server.duplicates <= CONCURRENCY * BATCH
        assert set(server.ids) - mine == archive.ids(own[other_k])
    assert again["sent"] + again["already_done"] == len(mine)
    assert again["already_done"] >= before - CONCURRENCY * BATCH
    assert again["files_read"] == len(own[killed])
    assert second["sent"] == len(archive.ids(own[other_k]))


def test_a_single_input_is_split_by_message_id_and_says_so(
    s3: S3, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_archive(s3, days=1, files_per_day=1, events_per_file=60)
    (url,) = archive.objects
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    with FaultServer(write_key=WRITE_KEY) as server:
        sent = 0
        for k in (1, 2):
            args = ["replay", url, "--to", "segment", "--host", server.url, "--shard", f"{k}/2"]
            result = cli(*args, "--json")
            summary = json.loads(result.stdout)
            assert summary["shard_by"] == "messageId" and summary["files_read"] == 1
            sent += summary["sent"]
            text = cli(*args, "--checkpoint", str(tmp_path / f"{k}.checkpoint"))
            assert "by messageId: a single input" in text.stderr
        assert sent == 60 and set(server.ids) == set(archive.events)


FORK_PROBE = """
import sys
from cmdai_cli import profile
from cmdai_cli.replay.options import ReplayOptions
from cmdai_cli.replay.select import Shard
from cmdai_cli.replay.setup import Setup

options = ReplayOptions(
    inputs=[sys.argv[1]], to="segment", host="http://127.0.0.1:9", shard=Shard(1, 2)
)
setup = Setup.make(options, profile.resolve(None, {}))
print(setup.target._pool is not None, len(setup.inputs))
setup.target.close()
setup.close_logs()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the worker is forked on Linux only")
def test_the_segment_worker_is_forked_before_object_storage_starts_its_thread(s3: S3) -> None:
    # The test process runs the S3 server's threads: the check needs a process of its own.
    archive = make_archive(s3, days=1, files_per_day=4, events_per_file=5)
    env = {**os.environ, **s3.env, "CMDAI_WRITE_KEY": WRITE_KEY}
    probe = subprocess.run(
        [sys.executable, "-c", FORK_PROBE, archive.prefix],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr.decode()
    forked, inputs = probe.stdout.decode().split()
    assert forked == "True"
    assert int(inputs) == len([url for url in archive.objects if shard_of(url, 2) == 1])
