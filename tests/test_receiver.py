"""The local Segment receiver, over real HTTP on loopback."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.receiver import MESSAGE_TYPES, Receiver

KEY = "wk_TESTSECRET_0123456789abcdef"


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def post(
    receiver: Receiver,
    path: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        data = raw if raw is not None else json.dumps(body).encode()
        conn.request(
            "POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def msg(kind: str = "track", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": kind, "userId": "u1", "messageId": str(uuid.uuid4())}
    if kind == "track":
        base["event"] = "Opened"
    if kind == "group":
        base["groupId"] = "g1"
    if kind == "alias":
        base["previousId"] = "anon-1"
    base.update(fields)
    return base


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_single_endpoints_take_their_type_from_the_path(rx: Receiver, kind: str) -> None:
    body = msg(kind)
    body["type"] = "something-else"
    status, answer = post(rx, f"/v1/{kind}", body)
    assert (status, answer) == (200, {"success": True})
    [received] = rx.messages()
    assert received.message["type"] == kind
    assert received.message["messageId"] == body["messageId"]
    assert received.path == f"/v1/{kind}"


def test_batch_merges_context_and_sent_at_and_strips_the_write_key(rx: Receiver) -> None:
    items = [msg(context={"ip": "1.2.3.4"}, writeKey=KEY), msg("identify", traits={"a": 1})]
    body = {"batch": items, "writeKey": KEY, "sentAt": "2024-05-01T00:00:00Z"}
    body["context"] = {"ip": "9.9.9.9", "app": {"name": "x"}}
    assert post(rx, "/v1/batch", body)[0] == 200
    first, second = (r.message for r in rx.messages())
    assert first["context"] == {"ip": "1.2.3.4", "app": {"name": "x"}}
    assert second["context"] == {"ip": "9.9.9.9", "app": {"name": "x"}}
    assert second["traits"] == {"a": 1}
    assert first["sentAt"] == "2024-05-01T00:00:00Z"
    assert all("writeKey" not in r.message and "receivedAt" in r.message for r in rx.messages())


def test_write_key_by_basic_auth_or_body_and_401_otherwise() -> None:
    with Receiver(write_key=KEY) as rx:
        assert post(rx, "/v1/track", msg(), headers=basic(KEY))[0] == 200
        assert post(rx, "/v1/track", {**msg(), "writeKey": KEY})[0] == 200
        status, answer = post(rx, "/v1/track", msg(), headers=basic("wrong-key-123"))
        assert status == 401 and answer["success"] is False
        assert post(rx, "/v1/batch", {"batch": [msg()]})[0] == 401
        assert post(rx, "/v1/track", msg(), headers={"Authorization": "Basic !!!"})[0] == 401
        assert len(rx.messages()) == 2
        assert rx.stats.rejected == {401: 3}


def test_gzip_bodies(rx: Receiver) -> None:
    raw = gzip.compress(json.dumps({"batch": [msg(), msg()]}).encode())
    status, _ = post(rx, "/v1/batch", None, raw=raw, headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert len(rx.messages()) == 2


@pytest.mark.parametrize(
    ("raw", "headers", "why"),
    [
        (b"{not json", {}, "invalid JSON"),
        (b"[1, 2]", {}, "object"),
        (b'"text"', {}, "object"),
        (b'{"batch": {"type": "track"}}', {}, "list"),
        (b'{"batch": [1, {"type": "track"}]}', {}, "not an object"),
        (gzip.compress(b'{"batch": []}' * 50)[:-12], {"Content-Encoding": "gzip"}, "gzip"),
        (b"garbage", {"Content-Encoding": "gzip"}, "gzip"),
        (b"{}", {"Content-Encoding": "br"}, "Content-Encoding"),
    ],
)
def test_bad_bodies_get_400_and_the_server_keeps_serving(
    rx: Receiver, raw: bytes, headers: dict[str, str], why: str
) -> None:
    status, answer = post(rx, "/v1/batch", None, raw=raw, headers=headers)
    assert status == 400
    assert why in answer["message"]
    assert post(rx, "/v1/track", msg())[0] == 200


def test_message_over_32_kb_is_refused(rx: Receiver) -> None:
    big = msg(properties={"blob": "x" * (32 * 1024)})
    assert post(rx, "/v1/batch", {"batch": [msg(), big]})[0] == 400
    assert post(rx, "/v1/track", big)[0] == 400
    just_under = msg(properties={"blob": "x" * (31 * 1024)})
    assert post(rx, "/v1/track", just_under)[0] == 200
    assert len(rx.messages()) == 1


def test_batch_over_500_kb_or_2500_messages_is_refused(rx: Receiver) -> None:
    items = [msg(properties={"blob": "x" * 20_000}) for _ in range(27)]
    status, answer = post(rx, "/v1/batch", {"batch": items})
    assert status == 400 and "500 KB" in answer["message"]
    small = [{"type": "track", "userId": "u", "event": "e"} for _ in range(2501)]
    status, answer = post(rx, "/v1/batch", {"batch": small})
    assert status == 400 and "2500" in answer["message"]
    assert post(rx, "/v1/batch", {"batch": small[:2500]})[0] == 200
    assert len(rx.messages()) == 2500


def test_gzip_bomb_is_refused_without_inflating_it(rx: Receiver) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 100_000
    status, answer = post(rx, "/v1/batch", None, raw=bomb, headers={"Content-Encoding": "gzip"})
    assert status == 400 and "500 KB" in answer["message"]


def test_chunked_bodies(rx: Receiver) -> None:
    payload = json.dumps({"batch": [msg()]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
    conn.request("POST", "/v1/batch", body=iter([payload[:10], payload[10:]]))
    assert conn.getresponse().status == 200
    conn.close()
    assert len(rx.messages()) == 1


def test_client_that_disconnects_mid_body_is_dropped(rx: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", rx.port)) as sock:
        sock.sendall(
            b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"{" * 100
        )
    deadline = time.monotonic() + 5
    while rx.stats.dropped_connections == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rx.stats.dropped_connections == 1
    assert post(rx, "/v1/track", msg())[0] == 200
    assert len(rx.messages()) == 1


def test_huge_declared_body_is_refused_without_reading_it(rx: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert post(rx, "/v1/track", msg())[0] == 200


def test_accepts_and_flags_what_segment_would_drop(rx: Receiver) -> None:
    dup = str(uuid.uuid4())
    items = [
        {"type": "track", "event": "x"},
        {"type": "track", "userId": "u"},
        {"type": "group", "userId": "u"},
        {"type": "alias", "userId": "u"},
        {"type": "banana", "userId": "u"},
        msg(messageId=dup),
        msg(messageId=dup),
        msg(messageId="m" * 101),
    ]
    assert post(rx, "/v1/batch", {"batch": items}) == (200, {"success": True})
    flags = [r.flags for r in rx.messages()]
    assert flags == [
        ("no userId or anonymousId",),
        ("track without event",),
        ("no groupId",),
        ("no previousId",),
        ("unknown type",),
        (),
        ("duplicate messageId",),
        ("messageId over 100 characters",),
    ]
    assert rx.stats.flagged == 7


def test_paths_and_methods(rx: Receiver) -> None:
    assert post(rx, "/v1/nope", msg())[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    conn.close()
    assert post(rx, "/v1/track/?x=1", msg())[0] == 200


def test_out_file_after_concurrent_burst_equals_what_was_acknowledged(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    acknowledged: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
        for i in range(20):
            items = [msg(messageId=f"{n}-{i}-{j}") for j in range(5)]
            if i % 7 == 3:
                items.append({"type": "track", "properties": {"blob": "x" * 40_000}})
            conn.request("POST", "/v1/batch", body=json.dumps({"batch": items}))
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    acknowledged.extend(m["messageId"] for m in items)
        conn.close()

    with Receiver(out=out) as rx:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    lines = out.read_bytes().splitlines()
    stored = [json.loads(line)["messageId"] for line in lines]
    assert len(acknowledged) == 8 * 17 * 5
    assert sorted(stored) == sorted(acknowledged)
    assert all("writeKey" not in json.loads(line) for line in lines)


def test_out_file_is_appended_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    out.write_text('{"earlier": true}\n')
    with Receiver(out=out) as rx:
        post(rx, "/v1/track", msg())
    assert out.read_text().count("\n") == 2


def test_connections_past_the_limit_get_503_and_memory_stays_bounded() -> None:
    with Receiver(max_connections=2, keep=5) as rx:
        idle = [socket.create_connection(("127.0.0.1", rx.port)) for _ in range(2)]
        try:
            with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as third:
                third.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                assert third.recv(100).startswith(b"HTTP/1.1 503")
        finally:
            for sock in idle:
                sock.close()
        for _ in range(20):
            assert post(rx, "/v1/track", msg())[0] == 200
        assert len(rx.messages()) == 5
        assert rx.stats.accepted == 20


def test_a_failing_callback_does_not_break_the_receiver() -> None:
    seen: list[str] = []

    def callback(received: Any) -> None:
        seen.append(received.message["messageId"])
        raise RuntimeError("boom")

    with Receiver(on_message=callback) as rx:
        assert post(rx, "/v1/track", msg(messageId="a"))[0] == 200
        assert post(rx, "/v1/track", msg(messageId="b"))[0] == 200
    assert seen == ["a", "b"]
    assert rx.stats.callback_errors == 2


def test_wait_for_a_message_id(rx: Receiver) -> None:
    timer = threading.Timer(0.1, post, args=(rx, "/v1/track", msg(messageId="late")))
    timer.start()
    found = rx.wait_for(message_id="late", timeout=5)
    timer.join()
    assert [r.message["messageId"] for r in found] == ["late"]
    assert rx.wait_for(message_id="never", timeout=0.05) == []


def test_port_in_use_is_a_usage_error(rx: Receiver) -> None:
    from cmdai_cli.errors import UsageError

    with pytest.raises(UsageError, match="cannot listen"):
        Receiver(port=rx.port).start()
