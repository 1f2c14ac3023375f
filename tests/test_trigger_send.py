"""`cmdai trigger` sending: into `cmdai listen`, checked by `cmdai expect`, through faults."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.receiver import ListenOptions, Receiver

from .conftest import WRITE_KEY
from .fault_server import FaultServer, status
from .test_listen import Listener


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)


def sent(cli, *args: str) -> dict[str, Any]:
    result = cli("--json", "trigger", *args)
    assert result.exit_code == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def expectations(path: Path, by_event: dict[str, int]) -> Path:
    """An `expect --file` asking for exactly the counts the summary gave."""
    tables = []
    for name, count in by_event.items():
        key = 'type = "identify"' if name == "identify" else f"event = {json.dumps(name)}"
        tables.append(f"[[expect]]\n{key}\ncount = {count}\n")
    path.write_text("\n".join(tables))
    return path


def test_listen_then_expect_finds_every_event_the_summary_sent(cli, keyed, tmp_path) -> None:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        summary = sent(cli, "day", "--users", "40", "--seed", "11", "--host", rx.url)
        assert summary["sent"] == summary["events"] == sum(summary["byEvent"].values())
        assert summary["failed"] == summary["rejected"] == summary["pending"] == 0
        assert summary["destination"] == f"{rx.url}/v1/batch"
        check = expectations(tmp_path / "expect.toml", summary["byEvent"])
        met = cli("expect", "--from", rx.url, "--file", str(check), "--no-flagged", "--catalogue")
        assert met.exit_code == 0, met.stdout
        # the whole of it: nothing more arrived than the summary says
        assert len(rx.messages()) == summary["sent"]
        # and it can fail: one event fewer than received is not met
        name, count = next(iter(summary["byEvent"].items()))
        fewer = expectations(tmp_path / "fewer.toml", {name: count - 1})
        assert cli("expect", "--from", rx.url, "--file", str(fewer)).exit_code == 1


def test_a_429_slows_sending_and_loses_nothing(cli, keyed) -> None:
    with FaultServer(write_key=WRITE_KEY, faults=[status(429, retry_after="1")]) as server:
        started = time.monotonic()
        summary = sent(cli, "nudge", "--users", "100", "--seed", "2", "--host", server.url)
        elapsed = time.monotonic() - started
        assert summary["sent"] == summary["events"] == server.delivered
        assert server.duplicates == 0
        assert server.answered(429) == 1
        assert elapsed >= 1.0  # Retry-After honoured


def test_refused_events_are_counted_and_exit_5(cli, keyed) -> None:
    with FaultServer(write_key=WRITE_KEY, faults=[status(400)] * 3) as server:
        result = cli("--json", "trigger", "shortcut", "--host", server.url)
        summary = json.loads(result.stdout)
        assert result.exit_code == 5
        assert summary["failed"] == 3 and summary["sent"] == 0
        # Why, and where the events are kept for `cmdai replay`.
        (reason,) = summary["failedReasons"]
        assert "400" in reason and summary["failedReasons"][reason] == 3
        dead = summary["deadLetter"]
        assert f"3 events not delivered: 3 failed: {reason} (in {dead})" in result.stderr
        assert len(Path(dead).read_text().splitlines()) == 3


def test_rate_is_kept(cli, keyed) -> None:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        started = time.monotonic()
        summary = sent(cli, "search-miss", "--users", "80", "--rate", "200", "--host", rx.url)
        elapsed = time.monotonic() - started
    count = summary["sent"]
    assert count == summary["events"] > 300
    # never faster than asked (the limiter starts with no tokens: n events take n/rate)
    assert elapsed >= 0.95 * count / 200
    assert summary["elapsed"] <= count / 200 + 1.5


def test_sending_needs_a_write_key(cli) -> None:
    result = cli("trigger", "nudge", "--host", "http://127.0.0.1:9")
    assert result.exit_code == 3
    assert "no write key is set" in result.stderr


def test_nudge_shows_its_life_in_listen_as_real_processes(cli, tmp_path) -> None:
    listener = Listener("--json")
    try:
        url = json.loads(listener.first)["listening"]
        env = {**os.environ, "CMDAI_WRITE_KEY": WRITE_KEY}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cmdai_cli",
                "--json",
                "trigger",
                "nudge",
                "--seed",
                "4",
                "--host",
                url,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        nudge = json.loads(done.stdout)
        assert nudge["sent"] == nudge["events"] >= 2 and nudge["byEvent"]["Nudge Shown"] == 1
        seen = [json.loads(listener.line()) for _ in range(2)]
        assert seen[0]["message"]["event"] == "Nudge Shown"
        assert seen[1]["message"]["event"] in ("Nudge Clicked", "Nudge Snoozed", "Nudge Dismissed")
        ids = {m["message"]["properties"]["id"] for m in seen}
        assert len(ids) == 1  # the same nudge from shown to its outcome
        assert not any(m["flags"] for m in seen)
        # and a day, sent by a real process, is found whole by expect (a few users: the
        # listener's lines wait in its pipe, unread)
        done = subprocess.run(
            [sys.executable, "-m", "cmdai_cli", "--json", "trigger", "day", "--users", "5",
             "--host", url],
            capture_output=True, text=True, env=env, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        by_event = dict(summary["byEvent"])
        for name, count in nudge["byEvent"].items():
            by_event[name] = by_event.get(name, 0) + count
        check = expectations(tmp_path / "expect.toml", by_event)
        met = cli("expect", "--from", url, "--file", str(check), "--no-flagged")
        assert met.exit_code == 0, met.stdout
    finally:
        listener.stop()


def test_the_write_key_is_checked_on_the_cdn_before_sending(cli, keyed) -> None:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        summary = sent(cli, "nudge", "--host", rx.url, "--cdn-host", rx.url)
        assert summary["keyCheck"]["status"] == "verified"
        assert len(rx.messages()) == summary["sent"] > 0
    # a CDN that knows no source with the key: refused, and nothing is sent
    with Receiver(ListenOptions(write_key="another-key-0123")) as cdn, Receiver() as rx:
        refused = cli("trigger", "day", "--users", "5", "--host", rx.url, "--cdn-host", cdn.url)
        assert refused.exit_code == 5
        assert "nothing sent" in refused.stderr
        assert rx.messages() == []


def test_an_unreachable_cdn_is_said_and_sending_goes_on(cli, keyed) -> None:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        result = cli("trigger", "shortcut", "--host", rx.url)  # the CDN: a closed port
        assert result.exit_code == 0, result.stderr
        assert "write key not verified" in result.stderr
        assert len(rx.messages()) == 3


def test_an_interrupted_run_says_how_to_make_the_same_events_again(cli, keyed) -> None:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        argv = [sys.executable, "-m", "cmdai_cli", "trigger", "nudge", "--users", "200"]
        argv += ["--rate", "50", "--seed", "5", "--host", rx.url]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rx.wait_for(1, timeout=10)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130
        first = {m.message["messageId"] for m in rx.messages()}
        hint = re.search(r"run it again with (--seed 5 --start (\S+)) to make the same events", err)
        assert hint is not None, err
        again = sent(cli, "nudge", "--users", "200", "--host", rx.url, *hint.group(1).split())
        ids = [m.message["messageId"] for m in rx.messages()]
    assert first and len(first) < again["events"]
    # The same events: those sent before the stop come again with the same messageIds.
    assert len(set(ids)) == again["events"] == again["sent"]
    assert first <= set(ids) and len(ids) == again["events"] + len(first)
