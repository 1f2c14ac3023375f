"""The hostile corpus (`hostile_corpus.py`) run through every command that has the edge:
no internal error, no hang, nothing lost, no secret shown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import hostile_corpus as corpus
from tests.conftest import TOKEN, WRITE_KEY
from tests.fake_public_api import FakePublicApi, running
from tests.listen_process import ListenProcess
from tests.test_plans import ORDER

# A deadline, not a speed test: a pattern that backtracks, or a reference loop, would run
# for minutes (or for ever); a loaded machine takes a few seconds at most.
ENDS_WITHIN = 30.0

pytestmark = pytest.mark.timeout(10)


def no_internal_error(result: Any) -> None:
    assert "internal error" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


# ------------------------------------------------------------------ plans


@pytest.mark.parametrize("case", corpus.plan_cases(), ids=lambda case: case.name)
def test_validate_against_each_hostile_plan(cli, tmp_path: Path, case: corpus.PlanCase) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(case.text)
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    started = time.monotonic()
    result = cli("validate", "--plan", str(plan), str(events))
    assert time.monotonic() - started < ENDS_WITHIN
    no_internal_error(result)
    assert result.exit_code == case.exit_code, result.stderr
    shown = result.stdout + result.stderr
    for word in case.words:
        assert word in shown
    if case.exit_code == 3:
        assert f"{plan}" in result.stderr


@pytest.mark.parametrize(
    "case",
    [c for c in corpus.plan_cases() if c.exit_code != 0][:8],
    ids=lambda case: case.name,
)
def test_expect_plan_against_each_hostile_plan(cli, tmp_path: Path, case: corpus.PlanCase) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(case.text)
    capture = tmp_path / "capture.ndjson"
    capture.write_text(corpus.hostile_events())
    started = time.monotonic()
    result = cli("expect", "--from", str(capture), "--plan", str(plan))
    assert time.monotonic() - started < ENDS_WITHIN
    no_internal_error(result)
    assert result.exit_code == case.exit_code, result.stderr


def test_a_slow_pattern_costs_a_bounded_time_per_message() -> None:
    from cmdai_cli import plans
    from cmdai_cli.plans import compiler

    # A back-reference: RE2 cannot take it, so the time-limited engine does.
    schema = corpus.properties_schema(
        {f"p{n}": {"type": "string", "pattern": r"^(\w+\s?)*(\1)$"} for n in range(40)}
    )
    plan = plans.parse_plan(json.loads(corpus.rule_plan(schema)), source="slow.json")
    validator = plans.Validator(plan)
    message = {
        "type": "track",
        "event": corpus.EVENT,
        "properties": {f"p{n}": "ab " * 12 + "!" for n in range(40)},
    }
    started = time.monotonic()
    found = validator.check(message)
    took = time.monotonic() - started
    assert found, "a value that ran out of time counts as not matching"
    # Forty patterns, each alone up to MATCH_SECONDS: the budget of one message holds.
    assert took < compiler.MESSAGE_SECONDS * 2 + 0.5


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^a$", "a", True),
        ("^a$", "a\n", False),  # ECMA-262: $ is the end of the text only
        (r"^(a)\1$", "aa", True),  # a back-reference: the time-limited engine
        (r"^(a)\1$", "aa\n", False),
        (r"^[$]x(?=y)", "$xy", True),
        (r"^[$]x(?=y)", "$xz", False),
    ],
)
def test_safe_patterns_keep_ecma_262_meaning(pattern: str, text: str, matches: bool) -> None:
    from cmdai_cli.plans import compiler

    budget = compiler.Budget()
    budget.start()
    assert compiler.SafePattern(pattern, budget).search(text) is matches


# ------------------------------------------------------------------ listen --plan


class Listen(ListenProcess):
    def post(self, body: dict[str, Any]) -> int:
        request = urllib.request.Request(
            self.url + "/v1/track",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        import base64

        key = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        request.add_header("Authorization", f"Basic {key}")
        with urllib.request.urlopen(request, timeout=3) as answer:
            return int(answer.status)

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as answer:
                return int(answer.status), json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None


@pytest.fixture
def listens() -> Iterator[list[Listen]]:
    started: list[Listen] = []
    yield started
    for listen in started:
        listen.kill()


def test_listen_with_a_backtracking_plan_keeps_answering_and_stops(
    listens: list[Listen], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(corpus.plan_cases()[0].text)
    out = tmp_path / "out.ndjson"
    listen = Listen("--plan", str(plan), "--out", str(out))
    listens.append(listen)
    assert listen.url, listen.err
    message = {"type": "track", "event": corpus.EVENT, "userId": "u", "properties": {}}
    for n in range(5):
        message["properties"] = {"a": corpus.EVIL_TEXT, "n": n}
        assert listen.post(message) == 200
    started = time.monotonic()
    status, summary = listen.get("/cmdai/summary")
    assert status == 200 and time.monotonic() - started < ENDS_WITHIN
    deadline = time.monotonic() + 5
    while summary["received"] < 5 and time.monotonic() < deadline:
        _, summary = listen.get("/cmdai/summary")
    # Every acknowledged message is kept, flagged, and on --out.
    assert summary["received"] == 5 and summary["flagged"] == 5
    status, messages = listen.get("/cmdai/messages")
    assert status == 200 and len(messages) == 5
    assert all(any("value not allowed" in f for f in m["flags"]) for m in messages)
    assert len(out.read_text().splitlines()) == 5
    # A bad `since` is the asker's mistake (400), not the server's (500).
    assert listen.get("/cmdai/messages?since=9999-12-31T23:59:59-01:00")[0] == 400
    listen.proc.send_signal(signal.SIGTERM)
    listen.proc.communicate(timeout=5)
    assert listen.proc.returncode == 0


@pytest.mark.parametrize("case", ["$ref to itself", "$ref to file://"])
def test_listen_refuses_a_plan_it_could_not_keep(
    listens: list[Listen], tmp_path: Path, case: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(next(c for c in corpus.plan_cases() if c.name == case).text)
    listen = Listen("--plan", str(plan))
    listens.append(listen)
    assert not listen.url and listen.proc.returncode == 3
    assert str(plan) in listen.err and "Traceback" not in listen.err


def test_a_check_that_fails_still_keeps_the_acknowledged_message() -> None:
    from cmdai_cli.receiver import Receiver
    from cmdai_cli.receiver.store import NOT_CHECKED

    def broken(message: Any) -> tuple[str, ...]:
        raise RecursionError("maximum recursion depth exceeded")

    with Receiver(check=broken) as receiver:
        request = urllib.request.Request(
            receiver.url + "/v1/track",
            data=json.dumps({"type": "track", "event": "E", "userId": "u"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=3) as answer:
            assert answer.status == 200
        kept = receiver.wait_for(1, timeout=3)
    assert len(kept) == 1 and NOT_CHECKED in kept[0].flags


# ------------------------------------------------------------------ settings files


@pytest.fixture
def not_a_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    name: str = request.param
    if name == "fifo":
        return str(corpus.make_fifo(tmp_path)), corpus.NOT_FILES[name]
    return name, corpus.NOT_FILES[name]


SETTINGS_COMMANDS = {
    "validate --plan": (["validate", "--plan", "{path}", "{events}"], 3),
    "map-payload --mapping": (["map-payload", "{events}", "--mapping", "{path}"], 4),
    "expect --file": (["expect", "--from", "{events}", "--file", "{path}"], 2),
    "expect --from capture": (["expect", "--from", "{path}", "--event", "x"], 4),
    "listen --plan": (["listen", "--port", "0", "--plan", "{path}"], 3),
}


@pytest.mark.parametrize("not_a_file", list(corpus.NOT_FILES), indirect=True)
@pytest.mark.parametrize("command", list(SETTINGS_COMMANDS))
def test_settings_that_are_not_files_are_refused_at_once(
    cli, tmp_path: Path, not_a_file: tuple[str, str], command: str
) -> None:
    path, kind = not_a_file
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    template, code = SETTINGS_COMMANDS[command]
    args = [a.format(path=path, events=events) for a in template]
    result = cli(*args)
    no_internal_error(result)
    assert result.exit_code == code, result.stderr
    assert kind in result.stderr and "regular file" in result.stderr


@pytest.mark.parametrize("not_a_file", list(corpus.NOT_FILES), indirect=True)
def test_a_profile_file_that_is_not_a_file(
    cli, tmp_path: Path, not_a_file: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, kind = not_a_file
    directory = tmp_path / "config"
    directory.mkdir()
    os.symlink(path, directory / "config.toml")
    result = cli("profile", "list")
    no_internal_error(result)
    assert result.exit_code == 3 and kind in result.stderr


@pytest.mark.parametrize("not_a_file", list(corpus.NOT_FILES), indirect=True)
def test_a_checkpoint_that_is_not_a_file(
    cli, tmp_path: Path, not_a_file: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = not_a_file
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    for extra in ((), ("--resume",)):
        result = cli(
            "replay", str(events), "--to", "segment", "--host", "http://127.0.0.1:9",
            "--checkpoint", path, *extra,
        )  # fmt: skip
        no_internal_error(result)
        assert result.exit_code == 2, result.stderr
        assert "regular file" in result.stderr
    assert not Path(path).is_file(), "the device or FIFO was replaced"


def test_a_key_on_stdin_is_read_up_to_a_limit(cli) -> None:
    result = cli("connect", "--write-key", "-", input="k" * 2_000_000)
    no_internal_error(result)
    assert result.exit_code == 2 and "more than cmdai reads" in result.stderr


def test_large_settings_are_refused_with_the_file_and_the_limit(
    cli, tmp_path: Path, config_path: Path
) -> None:
    expectations = tmp_path / "expect.toml"
    expectations.write_text('[[expect]]\nevent = "' + "x" * 30_000_000 + '"\n')
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    result = cli("expect", "--from", str(events), "--file", str(expectations))
    no_internal_error(result)
    assert result.exit_code == 2
    assert str(expectations) in result.stderr and "1 MiB" in result.stderr

    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text("# filler\n" * 700_000)
    result = cli("profile", "list")
    no_internal_error(result)
    assert result.exit_code == 3
    assert str(config_path) in result.stderr and "1 MiB" in result.stderr


def test_deep_settings_say_nested_too_deeply(cli, tmp_path: Path, config_path: Path) -> None:
    config_path.parent.mkdir(parents=True, exist_ok=True)
    dotted = ".".join(f"k{n}" for n in range(3000))
    config_path.write_text(f'[profiles.default.mapping]\n{dotted} = "$.x"\n')
    result = cli("profile", "list")
    no_internal_error(result)
    assert result.exit_code == 3 and "nested too deeply" in result.stderr

    expectations = tmp_path / "expect.toml"
    expectations.write_text("[[expect]]\nproperties = { a = " + "[" * 3000 + "]" * 3000 + " }\n")
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    result = cli("expect", "--from", str(events), "--file", str(expectations))
    no_internal_error(result)
    assert result.exit_code == 2 and "nested too deeply" in result.stderr

    config_path.unlink()
    mapping = tmp_path / "mapping.toml"
    mapping.write_text("[mapping]\n" + ".".join(["a"] * 500) + ' = "$.x"\n')
    result = cli("map-payload", str(events), "--mapping", str(mapping))
    no_internal_error(result)
    assert result.exit_code == 4 and "nested too deeply" in result.stderr


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('a=[1,{"b":1e400}]', "Infinity"),
        ("a=" + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("a=" + "[" * 100 + "]" * 100, "nested too deeply"),
    ],
    ids=["infinity", "100k deep", "100 deep"],
)
def test_property_values_json_cannot_carry_are_refused_before_sending(
    cli, httpserver, monkeypatch: pytest.MonkeyPatch, value: str, words: str
) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    result = cli("send-test", "--property", value, "--host", httpserver.url_for("").rstrip("/"))
    no_internal_error(result)
    assert result.exit_code == 2 and words in result.stderr
    assert not httpserver.log, "something was sent"


def test_a_toml_date_in_expectations(cli, tmp_path: Path) -> None:
    expectations = tmp_path / "expect.toml"
    expectations.write_text('[[expect]]\nevent = "x"\nproperties = { day = 1979-05-27 }\n')
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    result = cli("expect", "--from", str(events), "--file", str(expectations))
    no_internal_error(result)
    assert result.exit_code == 2 and "date" in result.stderr and ":3" in result.stderr


@pytest.mark.parametrize("flags", [{"a": 1}, [1, {"b": 2}], "one", None])
def test_capture_lines_with_flags_of_any_shape(cli, tmp_path: Path, flags: Any) -> None:
    capture = tmp_path / "capture.ndjson"
    line = {"receivedAt": "2024-01-01T00:00:00.000Z", "path": "/v1/track", "flags": flags}
    line["message"] = {"type": "track", "event": "E", "userId": "u"}
    capture.write_text(json.dumps(line) + "\n")
    result = cli("expect", "--from", str(capture), "--event", "E", "--max", "0")
    no_internal_error(result)
    assert result.exit_code in (0, 1), result.stderr


# ------------------------------------------------------------------ output paths


def test_ready_file_on_a_device_or_fifo_is_written_through_and_left(
    listens: list[Listen], tmp_path: Path
) -> None:
    fifo = corpus.make_fifo(tmp_path, "ready")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    listen = Listen("--ready-file", str(fifo))
    listens.append(listen)
    reader.join(timeout=5)
    assert got and got[0].decode().strip() == listen.url
    listen.proc.send_signal(signal.SIGTERM)
    listen.proc.communicate(timeout=5)
    assert fifo.is_fifo(), "the FIFO was replaced or removed"

    listen = Listen("--ready-file", "/dev/null")
    listens.append(listen)
    listen.proc.send_signal(signal.SIGTERM)
    listen.proc.communicate(timeout=5)
    assert listen.proc.returncode == 0 and Path("/dev/null").is_char_device()


def test_listen_out_to_a_fifo_nobody_reads_is_refused_at_once(cli, tmp_path: Path) -> None:
    fifo = corpus.make_fifo(tmp_path)
    result = cli("listen", "--port", "0", "--out", str(fifo))
    assert result.exit_code == 2 and "a FIFO that nobody reads" in result.stderr


def test_a_ready_file_replaced_by_someone_else_is_not_removed(
    listens: list[Listen], tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    listen = Listen("--ready-file", str(ready))
    listens.append(listen)
    deadline = time.monotonic() + 5
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    ready.unlink()
    ready.write_text("someone else's\n")
    listen.proc.send_signal(signal.SIGTERM)
    listen.proc.communicate(timeout=5)
    assert ready.read_text() == "someone else's\n"
    # Its own file, left in place, is removed as before.
    listen = Listen("--ready-file", str(tmp_path / "own"))
    listens.append(listen)
    listen.proc.send_signal(signal.SIGTERM)
    listen.proc.communicate(timeout=5)
    assert not (tmp_path / "own").exists()


def test_replay_logs_on_devices(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fault_server import FaultServer

    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    events = tmp_path / "events.ndjson"
    bad = {"type": "track", "userId": "u"}  # no event name: rejected
    good = {"type": "track", "event": "E", "userId": "u", "messageId": "m1"}
    events.write_text(json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    with FaultServer(write_key=WRITE_KEY) as server:
        result = cli(
            "replay", str(events), "--to", "segment", "--host", server.url,
            "--rejects", "/dev/null", "--dead-letter", "/dev/null", "--on-error", "skip",
            "--checkpoint", str(tmp_path / "cp"),
        )  # fmt: skip
    no_internal_error(result)
    assert result.exit_code in (0, 1), result.stderr
    assert Path("/dev/null").is_char_device()


def test_plan_pull_out_to_a_device_is_written_through(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cmdai_cli.errors import DataError
    from cmdai_cli.plans import Plan, Rule, save_plan

    plan = Plan("p", (Rule("TRACK", "E", {}),))
    fifo = corpus.make_fifo(tmp_path)
    with pytest.raises(DataError, match="a FIFO that nobody reads"):
        save_plan(plan, fifo)  # no reader: refused at once, not blocked for ever
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        save_plan(plan, fifo)
        got = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert json.loads(got)["rules"][0]["key"] == "E" and fifo.is_fifo()
    save_plan(plan, Path("/dev/null"))
    assert Path("/dev/null").is_char_device()
    with pytest.raises(DataError, match="No space left"):
        save_plan(plan, Path("/dev/full"))
    assert Path("/dev/full").is_char_device()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only; skipped where it cannot be mounted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small disk: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> None:
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_listen_out_on_a_full_disk_ends_with_a_whole_line(
    listens: list[Listen], small_disk: Path
) -> None:
    out = small_disk / "out.ndjson"
    fill(small_disk, 4096 * 2)
    listen = Listen("--out", str(out))
    listens.append(listen)
    message: dict[str, Any] = {
        "type": "track",
        "event": "E",
        "userId": "u",
        "properties": {"pad": "x" * 900},
    }
    answers = []
    for n in range(20):
        message["properties"]["n"] = n
        try:
            answers.append(listen.post(message))
        except urllib.error.HTTPError as exc:
            answers.append(exc.code)
    listen.proc.send_signal(signal.SIGTERM)
    listen.proc.communicate(timeout=5)
    data = out.read_bytes()
    assert data.endswith(b"\n") and 200 in answers and any(a != 200 for a in answers)
    kept = [json.loads(line) for line in data.splitlines()]
    # Every line on disk is whole, and it is one of those acknowledged.
    assert len(kept) == answers.count(200)


def test_a_full_disk_under_the_checkpoint_exits_1(
    cli, tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fault_server import FaultServer
    from tests.test_replay_cli import make_events, write_ndjson

    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    source = write_ndjson(tmp_path / "in.ndjson", make_events(2000))
    fill(small_disk, 4096 * 2)
    with FaultServer(write_key=WRITE_KEY) as server:
        result = cli(
            "replay", str(source), "--to", "segment", "--host", server.url,
            "--checkpoint", str(small_disk / "cp"), "--batch-size", "1",
        )  # fmt: skip
    no_internal_error(result)
    assert result.exit_code == 1, result.stderr
    assert "No space left on device" in result.stderr and "cp" in result.stderr


# ------------------------------------------------------------------ the terminal and small ones


ESCAPES = "\x1b[2J\x1b]0;owned\x07\u202e"


def test_escape_sequences_never_reach_the_terminal(cli, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(json.dumps({"type": "track", "event": ESCAPES, "userId": "u"}) + "\n")
    for args in (
        ["validate", str(events)],
        ["map-payload", str(events)],
        ["expect", "--from", str(events), "--event", ESCAPES],
        ["expect", "--from", str(events), "--plan", str(tmp_path / ESCAPES)],
    ):
        result = cli(*args)
        no_internal_error(result)
        shown = result.stdout + result.stderr
        assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown, args
    assert "\\x1b[2J" in cli("validate", str(events)).stdout


def test_a_listen_row_is_printable() -> None:
    from cmdai_cli.commands._received import row_line
    from cmdai_cli.receiver import Received

    message = {"type": "track", "event": ESCAPES, "userId": "\x1b[31mred"}
    row = row_line(Received(message, (), "2024-01-01T00:00:00.000Z", "/v1/track", b"{}"))
    assert "\x1b" not in row and "\\x1b" in row


def test_plan_show_of_a_lone_surrogate_key(cli, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"rules":[{"type":"TRACK","key":"\\ud800","jsonSchema":{}}]}')
    for args in (["plan", "show", str(plan)], ["plan", "show", str(plan), "--json"]):
        result = cli(*args)
        no_internal_error(result)
        assert result.exit_code == 0 and "\\ud800" in result.stdout


def test_a_host_with_an_open_bracket(cli) -> None:
    result = cli("connect", "--host", "http://[::1", "--write-key", WRITE_KEY)
    no_internal_error(result)
    assert result.exit_code == 2 and "is not a URL" in result.stderr


def test_stdout_closed_is_a_clear_failure(tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    done = subprocess.run(
        [sys.executable, "-m", "cmdai_cli", "map-payload", str(events)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(),
        preexec_fn=lambda: os.close(1),
        timeout=10,
    )
    assert done.returncode == 1 and "standard output is closed" in done.stderr
    assert "internal error" not in done.stderr


def test_an_unreadable_plan_is_a_plan_problem(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(corpus.rule_plan({}))
    events = tmp_path / "events.ndjson"
    events.write_text(corpus.hostile_events())
    # Root reads every file: the refusal is simulated where the permission is asked.
    real_open, real_access = os.open, os.access

    def denied_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path) == str(plan):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def denied_access(path: Any, mode: int, **kwargs: Any) -> bool:
        return False if str(path) == str(plan) else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "open", denied_open)
    monkeypatch.setattr(os, "access", denied_access)
    result = cli("expect", "--from", str(events), "--plan", str(plan))
    no_internal_error(result)
    assert result.exit_code == 3 and "Permission denied" in result.stderr


@pytest.mark.parametrize("answer", [[], None, {"received": "many"}, {"received": 1}, 7])
@pytest.mark.parametrize("path", ["/cmdai/summary", "/cmdai/messages"])
def test_expect_from_a_collector_answering_wrong_types(
    cli, httpserver, answer: Any, path: str
) -> None:
    good_summary = {"received": 0, "flagged": 0, "byFlag": {}, "byEvent": {}}
    httpserver.expect_request("/cmdai/summary").respond_with_json(
        answer if path == "/cmdai/summary" else good_summary
    )
    httpserver.expect_request("/cmdai/messages").respond_with_json(
        answer if path == "/cmdai/messages" else []
    )
    result = cli("expect", "--from", httpserver.url_for("/").rstrip("/"), "--event", "E")
    no_internal_error(result)
    assert result.exit_code in (1, 5), result.stderr
    if result.exit_code == 5:
        assert path in result.stderr


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePublicApi]:
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    with running(TOKEN) as fake:
        monkeypatch.setenv("CMDAI_API_HOST", fake.url)
        yield fake


def test_plan_pull_out_to_dev_null_and_a_fifo(cli, api: FakePublicApi, tmp_path: Path) -> None:
    plan = api.add_tracking_plan("Shop", [ORDER])
    result = cli("plan", "pull", "--tracking-plan", plan["id"], "--out", "/dev/null")
    assert result.exit_code == 0, result.stderr
    assert Path("/dev/null").is_char_device()
    fifo = corpus.make_fifo(tmp_path)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = cli("plan", "pull", "--tracking-plan", plan["id"], "--out", str(fifo))
        got = os.read(reader, 1 << 20)
    finally:
        os.close(reader)
    assert result.exit_code == 0, result.stderr
    assert json.loads(got)["name"] == "Shop" and fifo.is_fifo()
