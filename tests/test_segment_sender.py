"""The Segment sender, sending through segment-analytics-python to real servers."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.segment import sender
from cmdai_cli.segment.messages import MESSAGE_TYPES, REGION_HOSTS
from cmdai_cli.segment.sender import Sender, host_for, post_batch, send

KEY = "wk_TESTSECRET_0123456789abcdef"


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver(ListenOptions(write_key=KEY)) as receiver:
        yield receiver


def full_message(kind: str, n: int = 0) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": kind,
        "messageId": f"mid-{kind}-{n}",
        "timestamp": "2024-05-01T12:34:56.789Z",
        "userId": f"user-{n}",
        "anonymousId": f"anon-{n}",
        "context": {"ip": "203.0.113.7", "page": {"path": "/settings"}, "CommandBar": {"x": 1}},
        "integrations": {"All": False, "Mixpanel": True},
    }
    if kind == "alias":
        message.pop("anonymousId")
        message["previousId"] = f"anon-{n}"
    if kind in ("identify", "group"):
        message["traits"] = {"plan": "growth", "seats": 12, "nested": {"a": [1, 2]}}
    if kind in ("track", "page", "screen"):
        message["properties"] = {"type": "opened", "trigger": "keyboard", "n": 1.5}
    if kind == "track":
        message["event"] = "Opened"
    if kind in ("page", "screen"):
        message["name"] = "Settings"
        message["category"] = "Admin"
    if kind == "group":
        message["groupId"] = "org_10234"
    return message


def test_every_message_type_round_trips_with_its_fields(rx: Receiver) -> None:
    messages = [full_message(kind, n) for n, kind in enumerate(MESSAGE_TYPES)]
    outcomes = send(messages, write_key=KEY, host=rx.url, timeout=10)
    assert [o.status for o in outcomes] == ["accepted"] * len(MESSAGE_TYPES)
    assert [o.http_status for o in outcomes] == [200] * len(MESSAGE_TYPES)
    assert [o.message_id for o in outcomes] == [m["messageId"] for m in messages]
    arrived = {r.message["messageId"]: r.message for r in rx.messages()}
    for sent in messages:
        got = arrived[sent["messageId"]]
        assert "writeKey" not in got
        for name, value in sent.items():
            if name == "timestamp":
                assert datetime.fromisoformat(got[name]) == datetime.fromisoformat(
                    value.replace("Z", "+00:00")
                )
            elif name == "context":
                assert {k: v for k, v in got[name].items() if k != "library"} == value
            else:
                assert got[name] == value, name


def test_the_callers_context_is_not_modified(rx: Receiver) -> None:
    message = full_message("track")
    before = json.dumps(message, sort_keys=True)
    with Sender(KEY, rx.url, timeout=10) as sender:
        assert sender.send_one(message).ok
    assert json.dumps(message, sort_keys=True) == before


def test_send_returns_only_when_everything_was_answered_for(rx: Receiver) -> None:
    messages = [full_message("track", n) for n in range(250)]
    with Sender(KEY, rx.url, timeout=10, upload_interval=0.5) as sender:
        outcomes = sender.send(messages)
    assert all(o.ok for o in outcomes)
    # No waiting here: a receiver answers only after storing, so all must be there.
    assert len(rx.messages()) == 250


def test_a_full_queue_does_not_drop_messages(rx: Receiver) -> None:
    messages = [full_message("track", n) for n in range(30)]
    with Sender(
        KEY, rx.url, timeout=10, max_queue_size=1, upload_size=2, upload_interval=0.005
    ) as sender:
        outcomes = sender.send(messages)
    assert [o.status for o in outcomes] == ["accepted"] * 30
    assert sorted(r.message["messageId"] for r in rx.messages()) == sorted(
        m["messageId"] for m in messages
    )


def test_oversized_and_malformed_messages_are_reported_before_sending(rx: Receiver) -> None:
    big = full_message("track")
    big["properties"] = {"blob": "x" * (33 * 1024)}
    no_ids = {"type": "track", "event": "Opened"}
    no_event = {"type": "track", "userId": "u"}
    long_id = {**full_message("identify"), "messageId": "m" * 101}
    bad_time = {**full_message("identify", 1), "timestamp": "yesterday"}
    bad_type = {"type": "purchase", "userId": "u"}
    good = full_message("page")
    outcomes = send(
        [big, no_ids, no_event, long_id, bad_time, bad_type, good],
        write_key=KEY,
        host=rx.url,
        timeout=10,
    )
    assert [o.status for o in outcomes] == ["invalid"] * 6 + ["accepted"]
    assert "32 KB" in (outcomes[0].detail or "")
    assert "userId" in (outcomes[1].detail or "")
    assert "event" in (outcomes[2].detail or "")
    assert "100" in (outcomes[3].detail or "")
    assert "ISO-8601" in (outcomes[4].detail or "")
    assert "purchase" in (outcomes[5].detail or "")
    assert [r.message["messageId"] for r in rx.messages()] == [good["messageId"]]
    assert rx.stats.requests == 1


def test_refusal_reports_status_and_segments_message() -> None:
    # A refusing service: Segment itself takes a wrong key, `reject_wrong_key` does not.
    with (
        Receiver(ListenOptions(write_key=KEY, reject_wrong_key=True)) as rx,
        Sender("wrong-key-0000", rx.url, timeout=10) as sender,
    ):
        outcome = sender.send_one(full_message("track"))
        assert (outcome.status, outcome.http_status) == ("refused", 401)
        assert outcome.detail == "invalid write key"
        # The error callback returned normally: the consumer is alive and still sends.
        assert sender._consumer.is_alive()
        assert sender.send_one(full_message("identify")).status == "refused"
    assert rx.messages() == []


def test_the_error_callback_never_raises(rx: Receiver) -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise ValueError("cannot render")

    with Sender(KEY, rx.url, timeout=5) as sender:
        sender._on_error(None, None)
        sender._on_error(Hostile(), [{"messageId": "x"}])
        sender._on_error(RuntimeError("x"), [object(), None, {"messageId": 7}])
        sender._on_error(RuntimeError("x"), 42)
        assert sender.send_one(full_message("track")).ok


def test_one_consumer_and_no_sync_mode(rx: Receiver) -> None:
    with Sender(KEY, rx.url, timeout=5) as sender:
        client = sender._client
        assert len(client.consumers) == 1 and not client.sync_mode
    assert not sender._consumer.is_alive()


EXIT_SCRIPT = """
import sys, threading, time
from cmdai_cli.segment.sender import Sender
sender = Sender("abcdefgh-key", sys.argv[1], timeout=20)
message = {"type": "track", "userId": "u", "event": "Opened"}
threading.Thread(target=sender.send_one, args=(message,), daemon=True).start()
time.sleep(0.5)
"""


def test_exit_does_not_wait_for_a_request_in_flight(silent_url: str) -> None:
    # The library registers a join at exit that waits out a hanging request (here
    # up to 10 s); a Sender must not leave that behind.
    import subprocess
    import sys

    # The deadline is on the process ending: left behind, the join alone would hold it
    # for 10 s, and the silent server holds the request for 30.
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, silent_url], capture_output=True, timeout=8
    )
    assert done.returncode == 0, done.stderr


def test_unreachable_host() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    [outcome] = send(
        [full_message("track")], write_key=KEY, host=f"http://127.0.0.1:{port}", timeout=5
    )
    assert outcome.status == "unreachable"
    assert "could not connect" in (outcome.detail or "")
    assert time.monotonic() - started < 5


class _Silent(BaseHTTPRequestHandler):
    """Reads a request and never answers it."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(30)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def silent_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_host_that_never_answers_gives_up_within_the_timeout(silent_url: str) -> None:
    started = time.monotonic()
    with Sender(KEY, silent_url, timeout=1.5, max_retries=0) as sender:
        outcome = sender.send_one(full_message("track"))
    elapsed = time.monotonic() - started
    assert outcome.status == "unreachable"
    # Waiting for the answer would take the server's 30 s; the timeout is 1.5 s.
    assert elapsed < 15
    assert "no answer" in (outcome.detail or "")


def test_a_stopped_consumer_does_not_hang_send(rx: Receiver) -> None:
    sender = Sender(KEY, rx.url, timeout=30)
    sender.close()
    started = time.monotonic()
    outcome = sender.send_one(full_message("track"))
    assert outcome.status == "unreachable"
    # Hanging would wait out the 30 s timeout.
    assert time.monotonic() - started < 10


def test_long_rate_limit_is_reported_within_the_timeout(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/batch").respond_with_response(
        Response('{"code": "rate_limited"}', status=429, headers={"Retry-After": "120"})
    )
    started = time.monotonic()
    [outcome] = send([full_message("track")], write_key=KEY, host=httpserver.url_for(""), timeout=2)
    assert (outcome.status, outcome.http_status) == ("refused", 429)
    # Honouring the Retry-After would take 120 s; the timeout is 2 s.
    assert time.monotonic() - started < 30


def test_a_503_with_retry_after_is_reported_as_a_503(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/batch").respond_with_response(
        Response('{"code": "busy"}', status=503, headers={"Retry-After": "120"})
    )
    [outcome] = send([full_message("track")], write_key=KEY, host=httpserver.url_for(""), timeout=2)
    # The library treats any Retry-After as a rate limit; the answer was still a 503.
    assert (outcome.status, outcome.http_status) == ("unreachable", 503)
    assert outcome.detail is not None
    assert outcome.detail.startswith("HTTP 503 with Retry-After for longer than 2s")


def test_server_errors_are_retried_then_reported(httpserver: HTTPServer) -> None:
    calls: list[int] = []

    def handler(request: Request) -> Response:
        calls.append(1)
        return Response('{"code": "oops", "message": "try later"}', status=503)

    httpserver.expect_request("/v1/batch").respond_with_handler(handler)
    with Sender(KEY, httpserver.url_for(""), timeout=5, max_retries=2) as sender:
        outcome = sender.send_one(full_message("track"))
    # A 5xx on every attempt counts as unreachable (exit 6), not as a refusal (exit 5).
    assert (outcome.status, outcome.http_status) == ("unreachable", 503)
    assert outcome.detail == "kept failing with HTTP 503: try later"
    assert len(calls) == 3


def test_a_4xx_is_refused_at_once_and_a_5xx_after_every_retry() -> None:
    from cmdai_cli.segment.sender import answered_status

    assert [answered_status(code) for code in (400, 401, 403, 413, 429)] == ["refused"] * 5
    assert [answered_status(code) for code in (500, 502, 503, 504)] == ["unreachable"] * 4


def test_region_picks_the_host_and_an_explicit_host_wins() -> None:
    assert host_for("us") == REGION_HOSTS["us"] == host_for(None)
    assert host_for("eu") == "https://events.eu1.segmentapis.com"
    assert host_for("eu", "http://127.0.0.1:9999/") == "http://127.0.0.1:9999"
    from cmdai_cli.errors import UsageError

    with pytest.raises(UsageError):
        host_for("us", "http://segment.example.com")


def test_an_answer_that_is_not_a_success_is_a_failure_or_a_refusal_with_its_hint() -> None:
    detail, hint = sender.not_taken("h", 503, "down")
    assert detail == "h failed: HTTP 503: down" and hint == sender.SERVER_FAILED_HINT
    detail, hint = sender.not_taken("h", 401, "no key", "the test event")
    assert detail == "h refused the test event: HTTP 401: no key"
    assert hint == sender.SEGMENT_HINTS[401] == sender.segment_hint(401)
    detail, hint = sender.not_taken("h", 418, "tea")
    assert hint == sender.SEGMENT_HOST_HINT


def test_the_segment_layer_needs_no_profile() -> None:
    """Replay's worker process loads the sender: pydantic and the profile stay out of it."""
    import subprocess
    import sys

    code = (
        "import sys, cmdai_cli.segment.sender, cmdai_cli.replay.posting; "
        "print(sorted(m for m in sys.modules if m == 'pydantic' or m == 'cmdai_cli.profile'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ post_batch


def test_post_batch_keeps_messages_verbatim(rx: Receiver) -> None:
    message = {**full_message("track"), "context": {"library": {"name": "analytics.js"}}}
    message["custom"] = {"kept": True}
    result = post_batch([message], write_key=KEY, host=rx.url, context={"ip": "1.1.1.1"})
    assert (result.status, result.http_status, result.retry_after) == ("accepted", 200, None)
    [got] = rx.messages()
    assert got.message["context"] == {"ip": "1.1.1.1", "library": {"name": "analytics.js"}}
    assert got.message["custom"] == {"kept": True}
    assert got.message["timestamp"] == message["timestamp"]


def test_post_batch_refusal_and_retry_after_without_retrying(httpserver: HTTPServer) -> None:
    seen: list[bytes] = []

    def handler(request: Request) -> Response:
        seen.append(gzip.decompress(request.get_data()))
        return Response(
            '{"code": "rate_limited", "message": "slow down"}',
            status=429,
            headers={"Retry-After": "7"},
        )

    httpserver.expect_request("/v1/batch").respond_with_handler(handler)
    result = post_batch([full_message("track")], write_key=KEY, host=httpserver.url_for(""))
    assert (result.status, result.http_status, result.message) == ("refused", 429, "slow down")
    assert result.retry_after == 7.0
    assert len(seen) == 1 and json.loads(seen[0])["batch"][0]["messageId"] == "mid-track-0"


def test_post_batch_segment_400(rx: Receiver) -> None:
    big = {**full_message("track"), "properties": {"blob": "x" * 40_000}}
    result = post_batch([big], write_key=KEY, host=rx.url, gzip=False)
    assert (result.status, result.http_status) == ("refused", 400)
    assert "32 KB" in (result.message or "")


def test_post_batch_unreachable_and_timeout(silent_url: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = post_batch([full_message("track")], write_key=KEY, host=f"http://127.0.0.1:{port}")
    assert (result.status, result.http_status) == ("unreachable", None)
    assert "could not connect" in (result.message or "")
    started = time.monotonic()
    result = post_batch([full_message("track")], write_key=KEY, host=silent_url, timeout=0.5)
    assert result.status == "unreachable" and "timed out" in (result.message or "")
    # Waiting for the answer would take the server's 30 s; the timeout is 0.5 s.
    assert time.monotonic() - started < 15


def test_repeated_message_ids_each_get_their_outcome(rx: Receiver) -> None:
    twice = [full_message("track"), full_message("track")]
    outcomes = send(twice, write_key=KEY, host=rx.url, timeout=10)
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    assert [r.flags for r in rx.messages()] == [(), ("duplicate messageId",)]
