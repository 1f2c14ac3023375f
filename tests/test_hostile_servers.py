"""Every command with an HTTP edge, against servers that misbehave (`hostile_server`).

For each command and each way of misbehaving: no internal error, no run past its
deadline, no secret on stdout or stderr (the `cli` fixture checks that), nothing sent to
the host a redirect points at, and the exit code the README's table gives. Memory is
checked in real processes (`test_memory_stays_bounded`): under 200 MB whatever the
answer's size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cmdai_cli.events import storage
from tests.conftest import SHARED_SECRET, TOKEN, WRITE_KEY, Cli
from tests.hostile_server import HostileServer, gzip_bomb
from tests.test_replay_cli import make_events, write_ndjson

TIMEOUT = "1"
# The slowest command asks a few services in turn, each within --timeout; anything past
# this is a hang.
BOUND = 8.0
RSS_LIMIT_KB = 200 * 1024

Setup = Callable[[pytest.MonkeyPatch, str, Path], list[str]]


def _segment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    monkeypatch.setenv("CMDAI_COMMANDAI_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_ORG_ID", "org42")


def connect(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> list[str]:
    return ["connect", "--write-key", WRITE_KEY, "--cdn-host", url, "--timeout", TIMEOUT]


def doctor(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> list[str]:
    _segment_env(monkeypatch)
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_WEBHOOK_URL", url + "/hook")
    return [
        "doctor", "--host", url, "--cdn-host", url, "--api-host", url, "--timeout", TIMEOUT,
    ]  # fmt: skip


def send_test(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> list[str]:
    _segment_env(monkeypatch)
    return ["send-test", "--host", url, "--cdn-host", url, "--timeout", TIMEOUT]


def public_api(*args: str) -> Setup:
    def setup(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> list[str]:
        return [*args, "--token", TOKEN, "--api-host", url, "--timeout", "0.5"]

    return setup


def expect(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> list[str]:
    return ["expect", "--from", url, "--event", "Opened", "--timeout", TIMEOUT]


def replay(target: str, flag: str) -> Setup:
    def setup(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> list[str]:
        _segment_env(monkeypatch)
        source = write_ndjson(tmp_path / "in.ndjson", make_events(3))
        return [
            "replay", str(source), "--to", target, flag, url, "--concurrency", "1",
            "--max-retries", "1", "--backoff", "0.01", "--timeout", TIMEOUT,
        ]  # fmt: skip

    return setup


def map_payload(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> list[str]:
    # An input may be gigabytes: its deadline is per request, 60 s; a second here.
    monkeypatch.setattr(storage, "HTTP_REQUEST_TIMEOUT", 1.0)
    monkeypatch.setattr(storage, "_filesystems", {})
    return ["map-payload", url + "/events.ndjson", "--target", "webhook"]


COMMANDS: dict[str, Setup] = {
    "connect": connect,
    "doctor": doctor,
    "send-test": send_test,
    "destination-configure": public_api(
        "destination", "configure", "--org-id", "org1", "--source", "src", "--apply"
    ),
    "destination-show": public_api("destination", "show", "--remote"),
    "plan-pull": public_api("plan", "pull", "--tracking-plan", "tp_1"),
    "status": public_api("status"),
    "expect": expect,
    "replay-segment": replay("segment", "--host"),
    "replay-webhook": replay("webhook", "--url"),
    "replay-bulk-identify": replay("bulk-identify", "--host"),
    "map-payload": map_payload,
}

# What each exit code may be: the README's table. A redirect and an answer past its cap
# are refusals (5), a trickle a time-out (6). `doctor` and `status` report a failed check
# with 1; `connect` stores a key it could not verify, with a warning (0). Delivery reads
# an answer for its status only: a 200 with a body past the cap delivered (0).
REFUSED = {5}
LATE = {6}
EXPECTED: dict[str, dict[str, set[int]]] = {
    "redirect": {"doctor": {1}, "status": {5}, "connect": {0}},
    "trickle-headers": {"doctor": {1}, "status": {6}, "connect": {0}},
    "trickle-body": {"doctor": {1}, "status": {6}, "connect": {0}},
    # An input's answer is events: what the event reader makes of them (1 or 4), or a
    # time-out when it never ends.
    "gzip-bomb": {"doctor": {1}, "status": {5}, "connect": {5}, "map-payload": {1, 4}},
    "endless": {"doctor": {1}, "status": {5}, "connect": {5}, "map-payload": {4, 6}},
}
DEFAULT = {
    "redirect": REFUSED,
    "trickle-headers": LATE,
    "trickle-body": LATE,
    "gzip-bomb": REFUSED,
    "endless": REFUSED,
}
# Delivery (replay) reads a 200 for its status alone; send-test checks the key on the
# CDN first, whose answer past its cap is refused.
DELIVERED_ANYWAY = {"replay-segment", "replay-webhook", "replay-bulk-identify"}


@pytest.fixture
def server() -> Iterator[HostileServer]:
    gzip_bomb()  # made before the clock of any command starts
    with HostileServer() as hostile:
        yield hostile


def expected_codes(mode: str, command: str) -> set[int]:
    if mode in ("gzip-bomb", "endless") and command in DELIVERED_ANYWAY:
        return {0}
    return EXPECTED[mode].get(command, DEFAULT[mode])


@pytest.mark.parametrize("mode", list(DEFAULT))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_hold_against_hostile_servers(
    cli: Cli,
    server: HostileServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: str,
    mode: str,
) -> None:
    server.mode = mode
    args = COMMANDS[command](monkeypatch, server.url, tmp_path)
    if command == "destination-show":
        assert cli("destination", "configure", "--org-id", "org1", "--source", "src").exit_code == 0
    started = time.monotonic()
    result = cli(*args)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"{command} took {elapsed:.1f} s against {mode}"
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert result.exit_code in expected_codes(mode, command), result.stderr
    # Nothing, and so no key, reached the host the redirect pointed at.
    assert server.thief.requests == []
    if result.exit_code in (5, 6):
        assert result.stderr.strip().splitlines()[-1].startswith("cmdai: error: ")
    if mode in ("gzip-bomb", "endless") and result.exit_code == 5:
        assert "MiB" in result.stderr or "KiB" in result.stderr


@pytest.mark.parametrize(
    "body",
    [b"[]", b"null", b'"x"', b"3", b'{"data": []}', b'{"data": {"sources": 3}}'],
    ids=["list", "null", "string", "number", "data-list", "wrong-field"],
)
@pytest.mark.parametrize(
    "command", ["connect", "doctor", "destination-show", "plan-pull", "status", "expect"]
)
def test_wrong_json_types_are_refused_not_crashed_on(
    cli: Cli,
    server: HostileServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: str,
    body: bytes,
) -> None:
    server.mode, server.body = "json", body
    args = COMMANDS[command](monkeypatch, server.url, tmp_path)
    if command == "destination-show":
        assert cli("destination", "configure", "--org-id", "org1", "--source", "src").exit_code == 0
    result = cli(*args)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert result.exit_code in {0, 1, 5}, result.stderr


# Runs cmdai and, as it ends, writes its peak resident memory (VmHWM: this program's
# own, which getrusage would not give, as it keeps the peak of the forking parent).
_LAUNCH = """
import atexit, os, runpy, sys
where = sys.argv[1]
def peak():
    with open('/proc/self/status') as status, open(where, 'w') as out:
        out.write(next(line for line in status if line.startswith('VmHWM:')).split()[1])
atexit.register(peak)
leave = os._exit
def _exit(code):  # cmdai may end with os._exit, which skips atexit
    peak()
    leave(code)
os._exit = _exit
sys.argv = ['cmdai', *sys.argv[2:]]
runpy.run_module('cmdai_cli', run_name='__main__')
"""


def _run_measured(args: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int, int, str]:
    """Run cmdai as a process: its exit code, peak RSS in KB, and stderr."""
    peak = tmp_path / "peak"
    process = subprocess.run(
        [sys.executable, "-c", _LAUNCH, str(peak), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=BOUND,
    )
    return process.returncode, int(peak.read_text()), process.stderr.decode(errors="replace")


@pytest.mark.parametrize("mode", ["gzip-bomb", "huge", "endless"])
@pytest.mark.parametrize("command", ["connect", "plan-pull", "expect", "replay-webhook"])
def test_memory_stays_bounded(
    server: HostileServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: str,
    mode: str,
) -> None:
    server.mode = mode
    args = COMMANDS[command](monkeypatch, server.url, tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    started = time.monotonic()
    code, rss_kb, err = _run_measured(args, env, tmp_path)
    assert time.monotonic() - started < BOUND, f"{command} hung against {mode}"
    assert "Traceback" not in err and "internal error" not in err
    assert code in ({0} if command == "replay-webhook" else {5}), err
    assert rss_kb < RSS_LIMIT_KB, f"{command} against {mode}: {rss_kb // 1024} MB"
    assert WRITE_KEY not in err and TOKEN not in err


def test_sigterm_to_the_group_stops_a_replay_to_segment_quietly(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The forked sending process gets the signal too: no `ForkProcess-1` traceback.
    server.mode = "trickle-headers"
    args = replay("segment", "--host")(monkeypatch, server.url, tmp_path)
    args[args.index("--timeout") + 1] = "5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cmdai_cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + BOUND
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.requests, "the replay never sent"
    os.killpg(process.pid, 15)
    try:
        _, err = process.communicate(timeout=BOUND)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
    text = err.decode(errors="replace")
    assert "Traceback" not in text and "ForkProcess" not in text, text
    assert process.returncode == 130, text
