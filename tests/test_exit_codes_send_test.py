"""`cmdai send-test`'s exit code for each way Segment can fail, against a loopback server.

The rule: 5 when the service answered and refused (a 4xx, a 429 included once the
retries are spent); 6 when it could not be reached, timed out, or kept failing with 5xx.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cmdai_cli.segment import sender

from .conftest import WRITE_KEY, Cli


class _Answering(ThreadingHTTPServer):
    """Answers every batch with `status`, or with nothing until released when it is None."""

    daemon_threads = True

    def __init__(self, status: int | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = status
        self.requests = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Answering

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.requests += 1
        if self.server.status is None:
            self.server.release.wait()
            return
        body = json.dumps({"code": "test", "message": f"answered {self.server.status}"}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(status: int | None) -> Iterator[_Answering]:
    server = _Answering(status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    # One retry: the library makes its first retry at once, so no backoff is waited out.
    monkeypatch.setattr(sender, "MAX_RETRIES", 1)


def send_test(cli: Cli, host: str) -> tuple[int, dict[str, Any], str]:
    result = cli("send-test", "--host", host, "--timeout", "2", "--json")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("status", [400, 401])
def test_a_refusal_exits_5_without_retrying(cli: Cli, status: int) -> None:
    with serving(status) as server:
        code, summary, stderr = send_test(cli, server.url)
        assert server.requests == 1
    assert code == 5
    assert (summary["status"], summary["httpStatus"]) == ("refused", status)
    assert f"HTTP {status}: answered {status}" in stderr


def test_rate_limited_until_the_retries_are_spent_exits_5(cli: Cli) -> None:
    with serving(429) as server:
        code, summary, stderr = send_test(cli, server.url)
        assert server.requests == 2
    assert code == 5
    assert (summary["status"], summary["httpStatus"]) == ("refused", 429)
    assert "rate limited" in stderr


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_that_keeps_failing_exits_6(cli: Cli, status: int) -> None:
    with serving(status) as server:
        code, summary, stderr = send_test(cli, server.url)
        assert server.requests == 2
    assert code == 6
    assert (summary["status"], summary["httpStatus"]) == ("unreachable", status)
    assert f"kept failing with HTTP {status}: answered {status}" in stderr


def test_a_server_that_never_answers_exits_6(cli: Cli) -> None:
    with serving(None) as server:
        result = cli("send-test", "--host", server.url, "--timeout", "0.5", "--json")
    assert result.exit_code == 6
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["httpStatus"]) == ("unreachable", None)
    assert "within 0.5s" in result.stderr


def test_a_refused_connection_exits_6(cli: Cli) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, summary, stderr = send_test(cli, f"http://127.0.0.1:{port}")
    assert code == 6
    assert (summary["status"], summary["httpStatus"]) == ("unreachable", None)
    assert "could not connect" in stderr
