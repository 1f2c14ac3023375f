"""Slow, idle and broken clients against the receiver, on real sockets, limits made small.

Whatever they do, a well-behaved client is answered at once; no timing is asserted beyond
generous bounds (a slow client is cut off by its deadline, well before the test's own).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.connection import Limits

from .receiver_http import msg, post

SHORT = Limits(header_timeout=0.5, body_timeout=0.5, idle_timeout=0.5, max_connections=16)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver(ListenOptions(limits=SHORT, keep=50)) as receiver:
        yield receiver


@pytest.fixture
def quick_rx() -> Iterator[Receiver]:
    """Deadlines shorter still: for many clients that each leave a request unfinished."""
    quick = replace(SHORT, header_timeout=0.1, body_timeout=0.1, idle_timeout=0.1)
    with Receiver(ListenOptions(limits=quick, keep=50)) as receiver:
        yield receiver


def connect(rx: Receiver) -> socket.socket:
    return socket.create_connection(("127.0.0.1", rx.port), timeout=10)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_headers_trickling_in_are_cut_off_at_their_deadline(rx: Receiver) -> None:
    stop = threading.Event()
    started = threading.Barrier(41)
    answers: list[bytes] = []

    def trickle() -> None:
        with connect(rx) as sock:
            sock.sendall(b"P")
            started.wait()
            try:
                for byte in b"OST /v1/track HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 500:
                    if stop.is_set():
                        break
                    sock.sendall(bytes([byte]))
                    time.sleep(0.05)  # the slow client's pace, not a wait for a condition
            except OSError:
                pass
            answers.append(read_until_closed(sock))

    slow = [threading.Thread(target=trickle) for _ in range(40)]  # more than the 16 slots
    for thread in slow:
        thread.start()
    started.wait()  # every slow one has connected and begun its request
    try:
        # Served meanwhile, however many slow ones there are.
        for _ in range(10):
            assert post(rx, "/v1/track", msg())[0] == 200
    finally:
        for thread in slow:
            thread.join(timeout=30)
        stop.set()
    assert len(answers) == 40
    # Cut off by the deadline (a 408) or closed to make room (nothing).
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers)
    assert rx.stats.accepted == 10
    # Those cut off mid-request are drops; those closed before their first byte are not.
    assert 0 < rx.stats.dropped_connections <= 40


def test_a_stalled_body_is_cut_off_and_counted(rx: Receiver) -> None:
    with connect(rx) as sock:
        sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert rx.stats.dropped_connections == 1
    assert post(rx, "/v1/track", msg())[0] == 200


def test_idle_keep_alive_connections_are_closed_and_are_not_drops(rx: Receiver) -> None:
    idle = [connect(rx) for _ in range(40)]  # more than the 16 slots
    try:
        assert post(rx, "/v1/track", msg())[0] == 200
        assert all(read_until_closed(sock) == b"" for sock in idle)
    finally:
        for sock in idle:
            sock.close()
    assert rx.stats.dropped_connections == 0


def test_keep_alive_serves_many_requests_then_idles_out(rx: Receiver) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(rx) as sock:
        # Pipelined: all sent before any answer is read.
        sock.sendall(request * 500)
        data = read_until_closed(sock)  # closed by the idle deadline after the last
    assert data.count(b"HTTP/1.1 200 OK") == 500


def test_a_client_that_never_reads_its_answers_holds_nothing() -> None:
    limits = replace(SHORT, write_timeout=0.5)
    with Receiver(ListenOptions(limits=limits, keep=50)) as rx:
        stuck = connect(rx)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            # Each answer is a settings document, so that its buffers fill sooner.
            request = b"GET /v1/projects/k/settings HTTP/1.1\r\nHost: x\r\n\r\n" * 200
            # The server stops reading from it (its sending stalls for seconds), and
            # lets it go at its write deadline (the sending fails on a reset).
            with pytest.raises(OSError):
                stuck.settimeout(2)
                for _ in range(10_000):
                    stuck.sendall(request)
            assert post(rx, "/v1/track", msg())[0] == 200
        finally:
            stuck.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
        b"GET /a b c HTTP/1.1\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nContent-Length: -4\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n",
        b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["tls", "target", "negative-length", "bad-chunk", "huge-header", "two-lengths"],
)
def test_malformed_requests_get_a_4xx_and_the_server_goes_on(
    rx: Receiver, request_bytes: bytes
) -> None:
    with connect(rx) as sock:
        sock.sendall(request_bytes)
        answer = read_until_closed(sock)
    assert answer == b"" or answer[9:10] == b"4", answer[:40]
    assert post(rx, "/v1/track", msg())[0] == 200


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    head=st.sampled_from([b"POST /v1/batch HTTP/1.1\r\n", b"GET / HTTP/1.1\r\n", b""]),
    junk=st.binary(max_size=300),
    close_early=st.booleans(),
)
def test_fuzzed_bytes_on_the_wire_never_break_the_server(
    quick_rx: Receiver, head: bytes, junk: bytes, close_early: bool
) -> None:
    rx = quick_rx
    with connect(rx) as sock:
        sock.sendall(head + junk)
        if close_early:
            sock.shutdown(socket.SHUT_WR)
        answer = read_until_closed(sock)
    # An HTTP answer or nothing at all; never a hang past the deadlines.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
    assert post(rx, "/v1/track", msg())[0] == 200


def test_head_is_answered_with_headers_only(rx: Receiver) -> None:
    with connect(rx) as sock:
        sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 ")
    assert b"Content-Length: " in head
    assert body == b""
