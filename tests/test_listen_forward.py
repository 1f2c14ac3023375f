"""`listen --forward-to`: every accepted request sent on once, through faults, latency,
a rate limit and a target that goes away and comes back; the dead letter, the drain,
the summary's counts and the refusals."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.forward import Intake
from cmdai_cli.receiver.options import ForwardOptions
from cmdai_cli.retry import RetryPolicy

from .conftest import WRITE_KEY
from .fault_server import DROP, OK, Fault, FaultServer, slow, status
from .listen_process import ListenProcess

QUICK = RetryPolicy(max_retries=12, base_delay=0.02, max_delay=0.2, max_total_wait=8.0)
SHORT = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02, max_total_wait=0.1)
AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def batch_body(first: int, count: int, *, key_in_body: bool = False) -> bytes:
    body: dict[str, Any] = {
        "batch": [
            {"type": "track", "event": "Opened", "userId": "u1", "messageId": f"m-{first + i}"}
            for i in range(count)
        ]
    }
    if key_in_body:
        body["writeKey"] = WRITE_KEY
    return orjson.dumps(body)


def post(
    url: str,
    bodies: list[bytes],
    *,
    headers: dict[str, str] | None = None,
    path: str = "/v1/batch",
) -> None:
    """POST each body in turn on one connection; each must be answered 200."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for body in bodies:
            sent = {"Content-Type": "application/json", "Authorization": AUTH}
            sent.update(headers or {})
            conn.request("POST", path, body, sent)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()


def ids(count: int) -> set[str]:
    return {f"m-{i}" for i in range(count)}


@pytest.fixture
def forwarding(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(url: str, **options: Any) -> Receiver:
        on_forward = options.pop("on_forward", None)
        options.setdefault("policy", QUICK)
        options.setdefault("dead_letter", tmp_path / "dead.ndjson")
        forward = ForwardOptions(url, **options)
        receiver = Receiver(ListenOptions(forward=forward), on_forward=on_forward).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def forwarded(receiver: Receiver) -> int:
    assert receiver.forwarder is not None
    return receiver.forwarder.counts.forwarded


# ---------------------------------------------------------------- every message once


def test_through_faults_every_message_arrives_once(forwarding) -> None:
    script = [status(503), DROP, status(500), OK, status(429, "0.05"), slow(0.2), status(502)]
    # Each fault twice: a third 429 among 20 answers would read as a rate limit, and the
    # engine would then pace itself (tested with the limiter shapes of the delivery tests).
    faults = [script[n % len(script)] for n in range(14)]
    with FaultServer(write_key=WRITE_KEY, faults=faults) as sink:
        receiver = forwarding(sink.url)
        post(receiver.url, [batch_body(10 * n, 10) for n in range(30)])
        wait_until(lambda: forwarded(receiver) == 300)
        receiver.stop()
        sink.settle()
        assert set(sink.ids) == ids(300)
        assert sink.duplicates == 0
        assert receiver.forwarded is not None and receiver.forwarded.failed == 0
        assert sink.answered(503) > 0 and sink.answered(429) > 0


def test_with_latency_many_are_in_flight_and_each_arrives_once(forwarding) -> None:
    with FaultServer(write_key=WRITE_KEY, delay=0.05) as sink:
        receiver = forwarding(sink.url)
        post(receiver.url, [batch_body(5 * n, 5) for n in range(100)])
        wait_until(lambda: forwarded(receiver) == 500)
        sink.settle()
        assert set(sink.ids) == ids(500) and sink.duplicates == 0
        # 100 requests of 50 ms each in well under 5 s: they overlapped.
        assert sink.max_active > 1


def test_a_rate_limit_is_honoured_and_every_message_arrives_once(forwarding) -> None:
    with FaultServer(
        write_key=WRITE_KEY, rate_limit=100, burst=10, limit_retry_after="0.05"
    ) as sink:
        receiver = forwarding(sink.url)
        post(receiver.url, [batch_body(2 * n, 2) for n in range(150)])
        wait_until(lambda: forwarded(receiver) == 300)
        sink.settle()
        assert set(sink.ids) == ids(300) and sink.duplicates == 0
        # The adaptive limit and the server's waits keep the 429s to a minority.
        assert sink.answered(429) < len(sink.requests) / 2


def test_a_target_that_goes_away_and_comes_back_gets_everything_once(forwarding) -> None:
    port = free_port()
    receiver = forwarding(f"http://127.0.0.1:{port}")
    post(receiver.url, [batch_body(10 * n, 10) for n in range(5)])
    # Nothing listens there: every forward is refused and waits for its retry.
    wait_until(lambda: receiver.store.summary()["forward"]["retrying"] == 50)
    with Receiver(ListenOptions(port=port)) as target:
        post(receiver.url, [batch_body(50 + 10 * n, 10) for n in range(5)])
        wait_until(lambda: forwarded(receiver) == 100)
        got = [received.message["messageId"] for received in target.messages()]
    assert sorted(got) == sorted(ids(100))
    assert receiver.store.summary()["forward"]["retrying"] == 0


# ---------------------------------------------------------------- what is sent


def test_the_request_goes_as_it_came(forwarding) -> None:
    with FaultServer(write_key=WRITE_KEY) as sink:
        receiver = forwarding(sink.url + "/", headers=(("X-Team", "web"),))
        plain = batch_body(0, 2)
        packed = gzip.compress(batch_body(2, 2))
        in_body = batch_body(4, 1, key_in_body=True)
        post(receiver.url, [plain])
        post(receiver.url, [packed], headers={"Content-Encoding": "gzip"})
        post(receiver.url, [in_body], headers={"Authorization": ""})
        wait_until(lambda: forwarded(receiver) == 5)
        seen = {r.body: r for r in sink.requests}
    assert set(seen) == {plain, packed, in_body}  # the bytes, unchanged
    assert {r.path for r in seen.values()} == {"/v1/batch"}
    assert seen[plain].headers["Authorization"] == AUTH
    assert seen[packed].headers["Content-Encoding"] == "gzip"
    assert "Authorization" not in seen[in_body].headers
    assert all(r.headers["X-Team"] == "web" for r in seen.values())


def test_an_authorization_header_given_is_sent_instead_of_the_apps(forwarding) -> None:
    # A webhook sink checks the header.
    with FaultServer(kind="webhook", auth=("Authorization", "Bearer staging")) as sink:
        receiver = forwarding(sink.url, headers=(("Authorization", "Bearer staging"),))
        post(receiver.url, [batch_body(0, 1)])
        wait_until(lambda: forwarded(receiver) == 1)
        assert sink.requests[0].headers["Authorization"] == "Bearer staging"
        assert sink.bad_auth == 0


def test_rewrite_key_replaces_the_key_wherever_it_was(forwarding, secrets) -> None:
    other = secrets.add("wk_OTHERSECRET_fedcba9876543210")
    with FaultServer(write_key=other) as sink:
        receiver = forwarding(sink.url, rewrite_key=other)
        post(receiver.url, [batch_body(0, 2)])
        post(receiver.url, [batch_body(2, 1, key_in_body=True)], headers={"Authorization": ""})
        wait_until(lambda: forwarded(receiver) == 3)
        assert set(sink.ids) == ids(3)
        bodies = [orjson.loads(r.body) for r in sink.requests]
    assert [body.get("writeKey") for body in bodies if "writeKey" in body] == [other]


# ---------------------------------------------------------------- what is left


def test_a_target_that_stays_down_fills_the_dead_letter_for_replay(
    forwarding, tmp_path: Path, cli
) -> None:
    dead = tmp_path / "dead.ndjson"
    outcomes: list[str] = []
    receiver = forwarding(
        f"http://127.0.0.1:{free_port()}",
        policy=SHORT,
        on_forward=lambda intake: outcomes.append(intake.state),
    )
    post(receiver.url, [batch_body(3 * n, 3) for n in range(4)])
    wait_until(lambda: receiver.store.summary()["forward"]["failed"] == 12)
    summary = receiver.store.summary()["forward"]
    assert summary["forwarded"] == 0 and summary["pending"] == 0
    receiver.stop()
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(line["event"]["messageId"] for line in lines) == sorted(ids(12))
    assert all("could not be reached" in line["error"]["reason"] for line in lines)
    assert outcomes.count("failed") == 4
    # The dead letter replays as it is, once the target is back.
    with FaultServer(write_key=WRITE_KEY) as sink:
        result = cli(
            "replay", str(dead), "--to", "segment", "--host", sink.url,
            env={"CMDAI_WRITE_KEY": WRITE_KEY},
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert set(sink.ids) == ids(12)


def test_a_full_buffer_dead_letters_what_comes_and_forwards_again_once_there_is_room(
    forwarding, tmp_path: Path
) -> None:
    release = threading.Event()
    outcomes: list[tuple[int, str]] = []

    def fault(n: int) -> Fault:
        return OK if release.is_set() else status(503, "0.05")

    with FaultServer(write_key=WRITE_KEY, fault_for=fault) as sink:
        receiver = forwarding(
            sink.url,
            buffer=5,
            on_forward=lambda intake: outcomes.append((intake.number, intake.state)),
        )
        # The first request waits for the target (3 of 5); the next three would pass 5.
        post(receiver.url, [batch_body(3 * n, 3) for n in range(4)])
        wait_until(lambda: receiver.store.summary()["forward"]["failed"] == 9)
        summary = receiver.store.summary()["forward"]
        assert (summary["pending"], summary["forwarded"]) == (3, 0)
        assert summary["deadLetter"] == str(tmp_path / "dead.ndjson")
        # In the file already, not only in memory: a stop that cannot wait loses none.
        assert len((tmp_path / "dead.ndjson").read_bytes().splitlines()) == 9
        release.set()
        wait_until(lambda: forwarded(receiver) == 3)
        post(receiver.url, [batch_body(12, 3)])  # room again: forwarded
        wait_until(lambda: forwarded(receiver) == 6)
        receiver.stop()
        sink.settle()
        assert set(sink.ids) == {f"m-{i}" for i in (0, 1, 2, 12, 13, 14)}
        assert sink.duplicates == 0
    lines = [json.loads(line) for line in (tmp_path / "dead.ndjson").read_text().splitlines()]
    assert sorted(line["event"]["messageId"] for line in lines) == sorted(
        f"m-{i}" for i in range(3, 12)
    )
    assert all(
        line["error"]["reason"] == "the forward buffer was full (--forward-buffer 5)"
        for line in lines
    )
    assert sorted(outcomes) == [
        (1, "forwarded"), (1, "retrying"), (2, "failed"), (3, "failed"), (4, "failed"),
        (5, "forwarded"),
    ]  # fmt: skip


def test_summary_counts_retrying_then_forwarded(forwarding) -> None:
    release = threading.Event()

    def fault(n: int) -> Fault:
        return OK if release.is_set() else status(503, "0.05")

    with FaultServer(write_key=WRITE_KEY, fault_for=fault) as sink:
        receiver = forwarding(sink.url)
        post(receiver.url, [batch_body(0, 4), batch_body(4, 3)])
        host, port = receiver.url.removeprefix("http://").rsplit(":", 1)

        def summary() -> dict[str, Any]:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/cmdai/summary")
            body = orjson.loads(conn.getresponse().read())
            conn.close()
            return body["forward"]

        wait_until(lambda: summary()["retrying"] == 7)
        assert summary()["forwarded"] == 0 and summary()["pending"] == 7
        release.set()
        wait_until(lambda: summary()["forwarded"] == 7)
        after = summary()
        assert (after["retrying"], after["failed"], after["pending"]) == (0, 0, 0)
        assert after["requests"] == 2
        assert after["target"] == sink.url


def test_outcomes_are_reported_with_the_kept_flags(forwarding) -> None:
    reported: list[tuple[str, int, Intake]] = []

    def report(intake: Intake) -> None:
        reported.append((intake.state, intake.attempts, intake))

    with FaultServer(write_key=WRITE_KEY, faults=[status(500)]) as sink:
        receiver = forwarding(sink.url, on_forward=report)
        post(receiver.url, [batch_body(0, 1), batch_body(0, 1)])  # the same messageId twice
        wait_until(lambda: forwarded(receiver) == 2)
        receiver.stop()
        assert sink.delivered == 2  # both requests: listen forwards what it accepted
    states = [(state, attempts) for state, attempts, _ in reported]
    assert ("retrying", 1) in states and ("forwarded", 2) in states
    done = [intake for state, _, intake in reported if state == "forwarded"]
    assert len(done) == 2
    flags = [intake.rows()[0].flags for intake in sorted(done, key=lambda i: i.number)]
    assert flags[1] == ("duplicate messageId",)


def test_an_outcome_known_before_the_messages_are_kept_is_reported_with_their_flags(
    forwarding,
) -> None:
    # A request the full buffer turns away fails as it is taken, before the receiver
    # has kept its messages (and found the second one's messageId repeated).
    reported: list[tuple[int, str, tuple[str, ...]]] = []  # as the table would show it
    release = threading.Event()

    def fault(n: int) -> Fault:
        return OK if release.is_set() else status(503, "0.05")

    def report(intake: Intake) -> None:
        reported.append((intake.number, intake.state, intake.rows()[0].flags))

    with FaultServer(write_key=WRITE_KEY, fault_for=fault) as sink:
        receiver = forwarding(sink.url, buffer=1, on_forward=report)
        post(receiver.url, [batch_body(0, 1), batch_body(0, 1)])
        wait_until(lambda: {state for _, state, _ in reported} == {"failed", "retrying"})
        release.set()
        wait_until(lambda: forwarded(receiver) == 1)
        receiver.stop()
    assert sorted(reported) == [
        (1, "forwarded", ()),
        (1, "retrying", ()),
        (2, "failed", ("duplicate messageId",)),
    ]


# ---------------------------------------------------------------- a real process


class Listen(ListenProcess):
    def __init__(self, *args: str, json_mode: bool = True) -> None:
        super().__init__(*args, json_mode=json_mode)
        if not self.url:
            pytest.fail(f"cmdai listen exited {self.proc.returncode} at start: {self.err}")


@pytest.fixture
def processes() -> Iterator[list[Listen]]:
    started: list[Listen] = []
    yield started
    for listen in started:
        listen.kill()


def test_sigterm_drains_what_is_in_flight(processes: list[Listen], tmp_path: Path) -> None:
    dead = tmp_path / "dead.ndjson"
    with FaultServer(write_key=WRITE_KEY, delay=1.0) as sink:
        listen = Listen("--forward-to", sink.url, "--forward-dead-letter", str(dead))
        processes.append(listen)
        post(listen.url, [batch_body(10 * n, 10) for n in range(5)])
        wait_until(lambda: len(sink.requests) == 5)
        listen.proc.send_signal(signal.SIGTERM)
        out, err = listen.proc.communicate(timeout=10)
        assert listen.proc.returncode == 0, err
        assert set(sink.ids) == ids(50) and sink.duplicates == 0
    assert "messages still on their way (up to --drain 10 s" in err
    assert not dead.exists()
    lines = [json.loads(line) for line in out.splitlines()]
    shown = [line for line in lines if "message" in line]
    assert sorted(line["message"]["messageId"] for line in shown) == sorted(ids(50))
    assert {line["forward"]["state"] for line in shown} == {"forwarded"}
    assert lines[-1]["summary"]["forward"]["forwarded"] == 50
    assert WRITE_KEY not in out + err


def test_sigterm_after_the_drain_dead_letters_the_rest(
    processes: list[Listen], tmp_path: Path
) -> None:
    dead = tmp_path / "dead.ndjson"
    with FaultServer(write_key=WRITE_KEY, delay=5) as sink:
        args = ("--forward-to", sink.url, "--forward-dead-letter", str(dead), "--drain", "0.3")
        listen = Listen(*args)
        processes.append(listen)
        post(listen.url, [batch_body(4 * n, 4) for n in range(3)])
        wait_until(lambda: len(sink.requests) == 3)
        started = time.monotonic()
        listen.proc.send_signal(signal.SIGTERM)
        out, err = listen.proc.communicate(timeout=10)
        took = time.monotonic() - started
    assert listen.proc.returncode == 1
    assert took < 4  # the drain and the cancelled requests' grace, not the target's 5 s
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(line["event"]["messageId"] for line in lines) == sorted(ids(12))
    assert "--drain 0.3 s" in lines[0]["error"]["reason"]
    assert f"12 messages not forwarded to {sink.url}" in err
    assert json.loads(out.splitlines()[-1])["summary"]["forward"]["failed"] == 12


def test_a_second_signal_cuts_the_drain_short_and_loses_nothing(
    processes: list[Listen], tmp_path: Path
) -> None:
    dead = tmp_path / "dead.ndjson"
    with FaultServer(write_key=WRITE_KEY, delay=30) as sink:
        args = ("--forward-to", sink.url, "--forward-dead-letter", str(dead), "--drain", "60")
        listen = Listen(*args)
        processes.append(listen)
        post(listen.url, [batch_body(4 * n, 4) for n in range(3)])
        wait_until(lambda: len(sink.requests) == 3)
        listen.proc.send_signal(signal.SIGINT)
        assert listen.proc.stderr is not None
        said = ""
        while "still on their way" not in said:  # the drain has begun
            said = listen.proc.stderr.readline()
            assert said, "listen ended before its drain"
        assert "Forwarding 12 messages still on their way" in said
        started = time.monotonic()
        listen.proc.send_signal(signal.SIGINT)
        out, err = listen.proc.communicate(timeout=10)
        took = time.monotonic() - started
    assert listen.proc.returncode == 130
    assert took < 5  # the in-flight requests' grace, not the drain's 60 s
    assert f"stopping at once: what is still being forwarded goes to {dead}" in err
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(line["event"]["messageId"] for line in lines) == sorted(ids(12))
    assert "stopped at once" in lines[0]["error"]["reason"]
    assert json.loads(out.splitlines()[-1])["summary"]["forward"]["failed"] == 12


def test_the_table_shows_each_forwards_outcome(processes: list[Listen], tmp_path: Path) -> None:
    dead = tmp_path / "dead.ndjson"
    with FaultServer(write_key=WRITE_KEY, faults=[status(503, "0.05")]) as sink:
        args = ("--forward-to", sink.url, "--forward-dead-letter", str(dead))
        listen = Listen(*args, json_mode=False)
        processes.append(listen)
        post(listen.url, [batch_body(0, 1)])
        wait_until(lambda: sink.delivered == 1)
        listen.proc.send_signal(signal.SIGINT)
        out, err = listen.proc.communicate(timeout=10)
    assert listen.proc.returncode == 0, err
    header, *rows = out.splitlines()
    assert header.split()[-2:] == ["forward", "flags"]
    assert [row.split()[-2:] if "retrying" in row else row.split()[-3:] for row in rows] == [
        ["retrying", "(503)"],
        ["200", "(2", "tries)"],
    ]
    assert f"Forwarding each accepted request to {sink.url}" in err
    assert "Forwarded 1 message to" in err and "0 failed" in err
    assert WRITE_KEY not in out + err


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://example.com", "starts with http:// or https://"),
        ("127.0.0.1:8080", "starts with http:// or https://"),
        ("http://", "the URL has no host"),
        ("http://user:secret@example.com", "holds credentials"),
        ("http://example.com/?key=1", "without a query string"),
        ("http://example.com:port", "port is not a number"),
    ],
)
def test_bad_targets_are_refused_before_listening(cli, url: str, said: str) -> None:
    result = cli("listen", "--port", "0", "--forward-to", url)
    assert result.exit_code == 2
    assert said in result.stderr
    assert "secret" not in result.stderr
    assert "Listening" not in result.stdout


def test_a_target_that_is_this_listen_is_refused(cli) -> None:
    port = str(free_port())
    for url in (f"http://127.0.0.1:{port}", f"http://localhost:{port}/v1"):
        result = cli("listen", "--port", port, "--forward-to", url)
        assert result.exit_code == 2
        assert "this listen itself" in result.stderr


def _own_address() -> str | None:
    """An address of this machine other than a loopback one, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.mark.parametrize(
    ("host", "bind", "is_self"),
    [
        ("0.0.0.0", "127.0.0.1", True),  # Linux connects 0.0.0.0 to the loopback
        ("0.0.0.0", "0.0.0.0", True),
        ("[::]", "::1", True),
        ("localhost", "127.0.0.1", True),
        ("[::ffff:127.0.0.1]", "127.0.0.1", True),
        ("127.0.0.2", "0.0.0.0", True),
        ("127.0.0.2", "127.0.0.1", False),  # a listen on 127.0.0.1 does not get it
        ("[::1]", "127.0.0.1", False),
        ("example.com", "0.0.0.0", False),  # names are not looked up
        ("198.51.100.7", "0.0.0.0", False),  # not this machine's
        ("own", "0.0.0.0", True),
        ("own", "127.0.0.1", False),
    ],
)
def test_which_targets_are_this_listen(host: str, bind: str, is_self: bool) -> None:
    from cmdai_cli.receiver.options import is_self as check

    if host == "own":
        own = _own_address()
        if own is None:
            pytest.skip("this machine has no address but loopback ones")
        host = own
    assert check(f"http://{host}:9111/v1", bind, 9111) is is_self
    assert check(f"http://{host}:9112/v1", bind, 9111) is False


def test_forward_options_need_forward_to_and_headers_a_colon(cli) -> None:
    result = cli("listen", "--port", "0", "--forward-header", "X-A:1")
    assert result.exit_code == 2 and "need --forward-to" in result.stderr
    result = cli("listen", "--port", "0", "--forward-buffer", "10")
    assert result.exit_code == 2 and "need --forward-to" in result.stderr
    result = cli("listen", "--forward-to", "http://example.com", "--forward-buffer", "0")
    assert result.exit_code == 2 and "--forward-buffer" in result.stderr
    result = cli("listen", "--forward-to", "http://example.com", "--forward-header", "nocolon")
    assert result.exit_code == 2 and "NAME:VALUE" in result.stderr
