"""The receiver's HTTP server: bodies, disconnects, paths, methods and connection limits."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.connection import Limits

from .receiver_http import msg, post


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


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


def test_paths_and_methods(rx: Receiver) -> None:
    assert post(rx, "/v1/nope", msg())[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    conn.close()
    assert post(rx, "/v1/track/?x=1", msg())[0] == 200


def test_idle_connections_make_room_for_new_ones_and_memory_stays_bounded() -> None:
    # Deliberate change: a full house of idle connections no longer turns clients away
    # with 503; the connection that waited longest for a request is closed instead.
    with Receiver(ListenOptions(limits=Limits(max_connections=2), keep=5)) as rx:
        idle = [socket.create_connection(("127.0.0.1", rx.port)) for _ in range(2)]
        try:
            with socket.create_connection(("127.0.0.1", rx.port), timeout=5) as third:
                third.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                assert third.recv(100).startswith(b"HTTP/1.1 200")
            idle[0].settimeout(5)
            assert idle[0].recv(100) == b""  # the oldest idle one was closed
        finally:
            for sock in idle:
                sock.close()
        for _ in range(20):
            assert post(rx, "/v1/track", msg())[0] == 200
        assert len(rx.messages()) == 5
        assert rx.stats.accepted == 21


def test_a_503_when_too_much_work_waits_after_answers() -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck(_: object) -> None:
        entered.set()
        release.wait(10)

    limits = Limits(workers=1, max_pending=1)
    with Receiver(ListenOptions(limits=limits), on_batch=stuck) as rx:
        try:
            # The first one's callback holds the only worker, the second one's waits.
            assert post(rx, "/v1/track", msg())[0] == 200
            assert entered.wait(10)
            assert post(rx, "/v1/track", msg())[0] == 200
            status, body = post(rx, "/v1/track", msg())
            assert (status, body["code"]) == (503, "busy")
        finally:
            release.set()
        assert rx.stats.accepted == 2
        # Once the work drains, requests are taken again.
        deadline = time.monotonic() + 10
        status = 0
        while status != 200 and time.monotonic() < deadline:
            status = post(rx, "/v1/track", msg())[0]
        assert status == 200


def test_port_in_use_is_a_usage_error(rx: Receiver) -> None:
    from cmdai_cli.errors import UsageError

    with pytest.raises(UsageError, match="cannot listen"):
        Receiver(ListenOptions(port=rx.port)).start()
