"""`cmdai expect` against a receiver fed by segment-analytics-python, and its files."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client

from cmdai_cli.errors import RemoteUnreachable, UsageError
from cmdai_cli.expect.check import same
from cmdai_cli.expect.expectations import Expectation, build, load_file
from cmdai_cli.expect.run import run
from cmdai_cli.expect.sources import CaptureFile, Collector, Item, Source
from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.store import Query

from .conftest import WRITE_KEY


def send(url: str, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
    """Each call through the real Python SDK, all delivered before returning."""
    errors: list[Any] = []
    sdk = Client(
        WRITE_KEY,
        host=url,
        upload_interval=0.05,
        max_retries=0,
        on_error=lambda e, b: errors.append(e),
    )
    for method, args, kwargs in calls:
        ok, _ = getattr(sdk, method)(*args, **kwargs)
        assert ok
    sdk.flush()
    sdk.join()
    assert errors == []


APP_EVENTS = [
    ("identify", ("user-1", {"plan": "growth", "seats": 12}), {"message_id": "m-id"}),
    ("track", ("user-1", "Opened", {"type": "opened", "trigger": "keyboard"}), {}),
    ("track", ("user-2", "Opened", {"type": "opened", "trigger": "launcher"}), {}),
    ("track", ("user-1", "Checkout Started", {"total": 30, "paid": True}), {}),
    ("page", ("user-1", "Admin", "Settings"), {}),
]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(ListenOptions(write_key=WRITE_KEY, out=tmp_path / "events.ndjson")) as rx:
        send(rx.url, APP_EVENTS)
        yield rx


def check(source: str | Path, *expectations: Expectation, **options: Any) -> Any:
    opened: Source = (
        Collector(source, timeout=5) if isinstance(source, str) else CaptureFile(Path(source))
    )
    return run(opened, list(expectations), **options)


# ------------------------------------------------------------------ expectations


def test_counts_and_their_words() -> None:
    assert Expectation().bounds == (1, None) and Expectation().wanted() == "at least 1"
    assert Expectation(count=2).wanted() == "exactly 2" and not Expectation(count=2).holds(3)
    assert Expectation(max=0).wanted() == "exactly 0" and Expectation(max=0).holds(0)
    assert Expectation(max=3).wanted() == "at most 3" and Expectation(max=3).holds(0)
    assert Expectation(min=2, max=4).wanted() == "2 to 4"
    described = Expectation(event="Opened", user_id="u1", properties={"n": 1, "s": "x"})
    assert described.describe() == 'track "Opened" from u1 with n=1, s="x"'
    # A Command AI properties.type stands for its catalogue name, and keeps itself too.
    assert Expectation(event="nudge_shown").event_names() == ("nudge_shown", "Nudge Shown")
    assert Expectation(event="Checkout").event_names() == ("Checkout",)


def test_values_compare_as_json() -> None:
    assert same(1, 1.0) and same({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not same(1, True) and not same("1", 1) and not same(0, None)
    assert not same({"a": 1}, {"a": 1, "b": 2}) and not same([1], [1, 1])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expectations.toml"
    path.write_text(text)
    return path


def test_a_file_of_expectations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
# The app's checkout and Command AI's bar.
[[expect]]
event = "Opened"
user_id = "user-1"
properties = { trigger = "keyboard" }

[[expect]]
type = "identify"
count = 1

[expect.properties]
plan = "growth"
""",
    )
    first, second = load_file(path)
    assert (first.event, first.user_id, dict(first.properties), first.line) == (
        "Opened",
        "user-1",
        {"trigger": "keyboard"},
        3,
    )
    assert (second.type, second.count, dict(second.properties), second.line) == (
        "identify",
        1,
        {"plan": "growth"},
        8,
    )


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('[[expect]]\nevent = "Opened"\ncolour = 3\n', ":3:", "unknown key 'colour'"),
        # The line of the key that conflicts with count, naming count's line too.
        (
            '[[expect]]\nevent = "A"\n\n[[expect]]\ncount = 1\nmin = 2\n',
            ":6:",
            "min with count (line 5): give count, or min and/or max, not both",
        ),
        ("[[expect]]\nmax = 2\ncount = 1\n", ":2:", "max with count (line 3)"),
        ('[[expect]]\ntype = "trak"\n', ":2:", "type 'trak' is not one of"),
        ("[[expect]]\nmin = -1\n", ":2:", "min must be a whole number"),
        ("[[expect]]\nmin = 3\nmax = 2\n", ":2:", "min 3 is above max 2"),
        ('[[expect]]\ntype = "page"\nevent = "x"\n', ":3:", "event names a track"),
        ('[[expect]]\nproperties = "x"\n', ":2:", "properties must be a table"),
        ('[[expect]]\nevent = "Opened\n', ":2:", "not valid TOML"),
        ('title = "x"\n', ":1:", "unknown key 'title'"),
        ("# nothing\n", "", "no [[expect]] tables"),
    ],
)
def test_a_bad_file_names_its_line(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_file(path)
    assert caught.value.exit_code == 2
    assert f"{path}{where}" in caught.value.message and problem in caught.value.message


def test_a_bad_file_exits_2_with_its_line(cli, tmp_path: Path) -> None:
    path = write(tmp_path, '[[expect]]\nevent = "Opened"\n\n[[expect]]\nevent = ""\n')
    result = cli("expect", "--from", str(tmp_path / "none.ndjson"), "--file", str(path))
    assert result.exit_code == 2
    assert f"{path}:5: event must be a non-empty string" in result.stderr


def test_flags_and_file_do_not_mix(cli, tmp_path: Path) -> None:
    path = write(tmp_path, '[[expect]]\nevent = "Opened"\n')
    result = cli("expect", "--file", str(path), "--event", "Closed", "--min", "2")
    assert result.exit_code == 2 and "--event, --min" in result.stderr
    assert build({}) == Expectation()


# ------------------------------------------------------------------ against a collector


def test_met_and_not_met(collector: Receiver) -> None:
    url = collector.url
    report = check(
        url,
        Expectation(event="Opened", min=2),
        Expectation(event="opened", user_id="user-1", properties={"trigger": "keyboard"}),
        Expectation(type="identify", properties={"plan": "growth", "seats": 12}, count=1),
        Expectation(event="Checkout Started", properties={"paid": True, "total": 30.0}),
        Expectation(type="page", max=1),
        Expectation(event="Closed", max=0),
    )
    assert report.ok, [outcome.as_dict() for outcome in report.outcomes]
    assert [outcome.found for outcome in report.outcomes] == [2, 1, 1, 1, 1, 0]
    assert report.received == 5 and report.looks == 1
    failing = check(
        url,
        Expectation(event="Opened", count=1),
        Expectation(event="Checkout Started", properties={"paid": 1}),
    )
    assert not failing.ok and failing.failed == 2
    assert [outcome.found for outcome in failing.outcomes] == [2, 0]


def test_nearest_messages_say_what_differs(collector: Receiver) -> None:
    report = check(
        collector.url,
        Expectation(event="Opened", user_id="user-2", properties={"trigger": "keyboard"}),
    )
    [outcome] = report.outcomes
    assert not outcome.met
    near = [(n.item.message["userId"], n.differences) for n in outcome.nearest]
    # The same user's Opened with another trigger, then the same trigger from another user.
    assert near[0] == ("user-2", ['properties.trigger "launcher" (expected "keyboard")'])
    assert near[1] == ("user-1", ['userId "user-1"'])
    data = outcome.as_dict()
    assert data["nearest"][0]["event"] == "Opened" and data["found"] == 0


def test_a_misspelt_event_gets_a_suggestion(collector: Receiver) -> None:
    [outcome] = check(collector.url, Expectation(event="Opend")).outcomes
    assert outcome.hint == "no 'Opend' events; did you mean 'Opened'?"
    assert all(n.differences == ['event "Opened"'] for n in outcome.nearest)


def test_too_many_says_so(collector: Receiver) -> None:
    [outcome] = check(collector.url, Expectation(event="Opened", max=1)).outcomes
    assert not outcome.met and outcome.hint == "2 messages match; expected at most 1"


def test_the_capture_file_answers_as_the_collector(collector: Receiver, tmp_path: Path) -> None:
    expectations = [
        Expectation(event="Opened", user_id="user-1", properties={"trigger": "keyboard"}),
        Expectation(type="identify", count=1),
        Expectation(event="Opened", count=1),
    ]
    live = check(collector.url, *expectations, no_flagged=True)
    stored = check(tmp_path / "events.ndjson", *expectations, no_flagged=True)
    assert [o.found for o in live.outcomes] == [o.found for o in stored.outcomes] == [1, 1, 2]
    assert live.flagged is not None and stored.flagged is not None
    assert live.flagged.met and stored.flagged.met


def test_no_flagged_lists_what_was_flagged(tmp_path: Path) -> None:
    with Receiver(ListenOptions(out=tmp_path / "events.ndjson")) as rx:
        send(
            rx.url,
            [
                ("track", ("user-1", "Opened"), {"message_id": "same"}),
                ("track", ("user-1", "Closed"), {"message_id": "same"}),
            ],
        )
        live = check(rx.url, no_flagged=True)
    stored = check(tmp_path / "events.ndjson", no_flagged=True)
    for report in (live, stored):
        assert not report.ok and report.flagged is not None
        assert report.flagged.by_flag == {"duplicate messageId": 1}
        assert [item.message["event"] for item in report.flagged.examples] == ["Closed"]


def test_catalogue_check(tmp_path: Path) -> None:
    with Receiver() as rx:
        send(
            rx.url,
            [
                ("track", ("u", "Opened", {"type": "opened", "trigger": "keyboard"}), {}),
                ("track", ("u", "Opened", {"type": "opened", "trigger": 3}), {}),
                ("track", ("u", "Closed", {"type": "opened"}), {}),
                ("track", ("u", "Nudge Shown", {"trigger": {}}), {}),
                ("identify", ("u", {"userAttributes": "admin"}), {}),
                # Not Command AI's: the app's own events are not checked.
                ("track", ("u", "Checkout Started", {"total": "x"}), {}),
                ("identify", ("u", {"plan": 3}), {}),
            ],
        )
        report = check(rx.url, catalogue=True)
    assert report.catalogue is not None and not report.ok
    assert report.catalogue.checked == 5
    problems = {
        item.message.get("event", "identify"): found for item, found in report.catalogue.broken
    }
    assert problems == {
        "Opened": ["/properties/trigger: expected string or null, got integer"],
        "Closed": ["/properties/type: 'opened' is the type of 'Opened', not of 'Closed'"],
        "Nudge Shown": ["/properties/type: required property 'type' is missing"],
        "identify": ["/traits/userAttributes: expected object or null, got string"],
    }


class LateSource:
    """A collector whose events arrive only after the first look, as in a slow pipeline."""

    def __init__(self, rx: Receiver) -> None:
        self.rx = rx
        self.inner = Collector(rx.url, timeout=5)
        self.where = self.inner.where
        self.looks = 0

    def refresh(self) -> None:
        self.looks += 1
        if self.looks == 2:
            send(self.rx.url, [("track", ("user-1", "Opened", {"type": "opened"}), {})])

    def messages(self, query: Query) -> list[Item]:
        return self.inner.messages(query)

    def counts(self) -> Any:
        return self.inner.counts()

    def catalogue(self) -> Any:
        return self.inner.catalogue()

    def close(self) -> None:
        self.inner.close()


def test_within_looks_again_until_it_holds() -> None:
    with Receiver() as rx:
        late = LateSource(rx)
        report = run(late, [Expectation(event="Opened")], within=30)
    assert report.ok and report.looks == 2 and late.looks == 2


def test_within_gives_up_when_the_time_is_up() -> None:
    with Receiver() as rx:
        report = run(Collector(rx.url, timeout=5), [Expectation(event="Opened")], within=0.3)
    assert not report.ok and report.looks >= 2


def test_an_unreachable_collector_is_retried_within_then_exit_6() -> None:
    with Receiver() as rx:
        url = rx.url
    with pytest.raises(RemoteUnreachable, match="is `cmdai listen` running"):
        run(Collector(url, timeout=2), [Expectation()], within=0.3)


# ------------------------------------------------------------------ the command


def test_cli_pass_fail_and_json(cli, collector: Receiver) -> None:
    url = collector.url
    ok = cli("expect", "--from", url, "--event", "Opened", "--user-id", "user-1",
             "--property", "trigger=keyboard", "--no-flagged")  # fmt: skip
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.splitlines()[0].startswith('PASS  track "Opened" from user-1')
    assert "PASS  no flagged messages: 0 flagged" in ok.stdout
    assert "All 2 checks hold (5 messages at" in ok.stderr
    failed = cli("--json", "expect", "--from", url, "--event", "Opened", "--user-id", "user-2",
                 "--property", "trigger=keyboard")  # fmt: skip
    assert failed.exit_code == 1
    data = json.loads(failed.stdout)
    assert data["ok"] is False and data["received"] == 5 and len(failed.stdout.splitlines()) == 1
    [outcome] = data["expectations"]
    assert outcome["found"] == 0 and outcome["wanted"] == "at least 1"
    assert outcome["nearest"][0]["differences"] == [
        'properties.trigger "launcher" (expected "keyboard")'
    ]
    assert "1 of 1 checks failed" in failed.stderr
    text = cli("expect", "--from", url, "--event", "Opened", "--user-id", "user-2",
               "--property", "trigger=keyboard")  # fmt: skip
    assert "      nearest: " in text.stdout and 'from user-2: properties.trigger "launcher"' in (
        text.stdout
    )


def test_cli_file_from_a_capture(cli, collector: Receiver, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[expect]]\nevent = "Opened"\nmin = 2\n\n[[expect]]\ntype = "alias"\n',
    )
    result = cli("expect", "--from", str(tmp_path / "events.ndjson"), "--file", str(path))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == 'PASS  track "Opened" (line 1): 2 found, expected at least 2'
    assert lines[1] == "FAIL  alias (line 5): 0 found, expected at least 1"


def test_cli_unreachable_exits_6(cli) -> None:
    with Receiver() as rx:
        url = rx.url
    result = cli("expect", "--from", url, "--event", "Opened")
    assert result.exit_code == 6 and "could not be reached" in result.stderr


def test_cli_missing_capture_file_exits_4(cli, tmp_path: Path) -> None:
    result = cli("expect", "--from", str(tmp_path / "nothing.ndjson"))
    assert result.exit_code == 4 and "no such capture file" in result.stderr


def test_a_capture_file_of_listen_json_lines(tmp_path: Path) -> None:
    lines = [
        {"listening": "http://127.0.0.1:1"},
        {"receivedAt": "2024-05-01T12:00:00.000Z", "path": "/v1/batch", "flags": ["x"],
         "message": {"type": "track", "event": "Opened", "userId": "u"}},
        {"summary": {"accepted": 1}},
    ]  # fmt: skip
    path = tmp_path / "listen.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"type": "tra')
    report = check(path, Expectation(event="Opened", count=1), no_flagged=True)
    assert report.outcomes[0].met and report.received == 1
    assert report.flagged is not None and report.flagged.by_flag == {"x": 1}


def test_cli_a_server_that_is_not_listen_exits_5(cli, httpserver) -> None:
    httpserver.expect_request("/cmdai/messages").respond_with_data("no", status=404)
    result = cli("expect", "--from", httpserver.url_for("/"), "--event", "Opened")
    assert result.exit_code == 5
    assert "answered 404" in result.stderr and "cmdai listen" in result.stderr


def test_cli_a_collector_failing_with_5xx_exits_6(cli, httpserver) -> None:
    httpserver.expect_request("/cmdai/messages").respond_with_data("down", status=503)
    result = cli("expect", "--from", httpserver.url_for("/"), "--event", "Opened")
    assert result.exit_code == 6 and "answered 503" in result.stderr


def test_cli_only_the_flagged_check_needs_no_expectation(cli, collector: Receiver) -> None:
    result = cli("--json", "expect", "--from", collector.url, "--no-flagged")
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["expectations"] == [] and data["noFlagged"]["met"]
    # With no check asked for at all, "at least one message" is the expectation.
    plain = cli("--json", "expect", "--from", collector.url)
    assert json.loads(plain.stdout)["expectations"][0]["found"] == 5


# ------------------------------------------------------------------ found in a new user's trial


def test_a_count_or_a_maximum_fails_when_the_collector_dropped_messages() -> None:
    with Receiver(ListenOptions(keep=2)) as rx:
        send(rx.url, [("track", ("user-1", "A"), {}) for _ in range(3)])
        report = check(
            rx.url,
            Expectation(event="A", count=2),
            Expectation(event="A", max=2),
            Expectation(event="A", min=2),
            Expectation(event="B"),
        )
    exact, most, least, other = report.outcomes
    for outcome in (exact, most):
        assert not outcome.met and outcome.found == 2
        assert outcome.hint is not None and "listen --keep 2" in outcome.hint
        assert "dropped 1 of 3 messages" in outcome.hint
    assert exact.hint is not None and exact.hint.startswith("cannot check exactly 2")
    # A minimum met by what is kept stays met.
    assert least.met
    assert not other.met and other.hint == "nothing like it among the 2 kept of 3 messages received"


def test_without_dropped_messages_a_count_holds() -> None:
    with Receiver(ListenOptions(keep=3)) as rx:
        send(rx.url, [("track", ("user-1", "A"), {}) for _ in range(3)])
        report = check(rx.url, Expectation(event="A", count=3), Expectation(event="B"))
    assert report.outcomes[0].met
    assert report.outcomes[1].hint == "nothing like it among 3 messages"


def test_a_capture_file_flags_what_segment_s_rules_find(tmp_path: Path) -> None:
    from .receiver_http import post

    with Receiver(ListenOptions(write_key=WRITE_KEY, out=tmp_path / "events.ndjson")) as rx:
        no_user = {"type": "track", "event": "Opened", "writeKey": WRITE_KEY}
        wrong_key = {"type": "track", "event": "Opened", "userId": "u", "writeKey": "other"}
        assert post(rx, "/v1/track", no_user)[0] == 200
        assert post(rx, "/v1/track", wrong_key)[0] == 200
        live = check(rx.url, no_flagged=True)
    stored = check(tmp_path / "events.ndjson", no_flagged=True)
    assert live.flagged is not None and stored.flagged is not None
    assert live.flagged.by_flag == {"no userId or anonymousId": 1, "wrong write key": 1}
    # The write key is not in the stored message: only the collector knows it was wrong.
    assert stored.flagged.by_flag == {"no userId or anonymousId": 1}


class LateCapture(CaptureFile):
    """A capture file written only after the first look, as by a collector still starting."""

    def __init__(self, path: Path, text: str) -> None:
        super().__init__(path)
        self.text = text
        self.looks = 0

    def refresh(self) -> None:
        self.looks += 1
        if self.looks == 2:
            self.path.write_text(self.text)
        super().refresh()


def test_within_waits_for_the_capture_file(tmp_path: Path) -> None:
    line = json.dumps({"type": "track", "event": "Opened", "userId": "u"}) + "\n"
    late = LateCapture(tmp_path / "events.ndjson", line)
    report = run(late, [Expectation(event="Opened")], within=30)
    assert report.ok and report.looks == 2


def test_cli_a_capture_file_that_never_appears_exits_4(cli, tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing.ndjson")
    result = cli("expect", "--from", missing, "--event", "Opened", "--within", "0.3")
    assert result.exit_code == 4 and "no such capture file" in result.stderr


def test_cli_flagged_and_catalogue_lines_name_the_event_and_user(cli, tmp_path: Path) -> None:
    with Receiver() as rx:
        send(
            rx.url,
            [
                ("track", ("user-1", "Opened"), {"message_id": "same"}),
                ("track", ("user-7", "Closed", {"type": "opened"}), {"message_id": "same"}),
            ],
        )
        result = cli("expect", "--from", rx.url, "--no-flagged", "--catalogue")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    flagged = lines[lines.index(next(x for x in lines if x.startswith("FAIL  no flagged"))) + 1]
    assert 'track "Closed" from user-7: duplicate messageId' in flagged
    assert any('track "Closed" from user-7: /properties/type:' in line for line in lines), lines


def test_cli_ctrl_c_while_waiting_exits_130() -> None:
    import signal
    import socket
    import subprocess
    import sys

    # A collector that takes the request and never answers: expect is inside its look.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "cmdai_cli", "expect", "--from", url, "--event", "Opened",
             "--within", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert out == "" and err == "cmdai: error: interrupted\n"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_what_expect_says_reads_as_a_sentence(cli, tmp_path: Path) -> None:
    other = cli("expect", "--from", "ftp://x", "--event", "Opened")
    assert other.exit_code == 2
    assert other.stderr.startswith("cmdai: error: --from ftp://x: ftp:// is neither")
    assert "no such capture file" not in other.stderr
    port = closed_port()
    down = cli("expect", "--from", f"http://127.0.0.1:{port}", "--event", "Opened")
    assert down.exit_code == 6
    # The system's words come after what failed, the question last.
    assert "Connection refused; is `cmdai listen` running?" in down.stderr
    capture = tmp_path / "capture.ndjson"
    capture.write_text('{"type":"track","userId":"u","event":"Invoice Sent"}\n')
    near = cli("expect", "--from", str(capture), "--event", "Invoice Sen")
    assert near.exit_code == 1
    assert "did you mean 'Invoice Sent'?" in near.stdout + near.stderr


def test_a_one_character_key_is_one_character(cli) -> None:
    said = cli("connect", "--write-key", "x", "--no-verify")
    assert said.exit_code == 2 and "has 1 character;" in said.stderr
