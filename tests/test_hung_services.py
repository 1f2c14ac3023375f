"""Every command that talks to a network service, against one that accepts and never answers.

Each takes --timeout and ends with exit 6 and one line on stderr well within the test's
generous bound, whatever the service does.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from .conftest import TOKEN, WRITE_KEY

BOUND = 60.0  # seconds: generous; the commands below give up after a few


@pytest.fixture
def hung() -> Iterator[str]:
    """A loopback server that accepts connections, reads what comes, and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "pull", "--tracking-plan", "tp_1"],
        ["destination", "show", "--remote"],
        ["destination", "configure", "--org-id", "org1", "--source", "src", "--apply"],
    ],
    ids=["plan-pull", "destination-show", "destination-configure"],
)
def test_public_api_commands_give_up_on_a_hung_service(cli, hung: str, args: list[str]) -> None:
    if args[:2] == ["destination", "show"]:
        assert cli("destination", "configure", "--org-id", "org1", "--source", "src").exit_code == 0
    started = time.monotonic()
    result = cli(*args, "--token", TOKEN, "--api-host", hung, "--timeout", "0.5")
    assert time.monotonic() - started < BOUND
    assert result.exit_code == 6, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("cmdai: error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["send-test"],
        ["connect", "--write-key", WRITE_KEY, "--send-test"],
    ],
    ids=["send-test", "connect"],
)
def test_tracking_api_commands_give_up_on_a_hung_service(cli, hung: str, args: list[str]) -> None:
    if args == ["send-test"]:
        assert cli("connect", "--write-key", WRITE_KEY).exit_code == 0
    started = time.monotonic()
    result = cli(*args, "--host", hung, "--timeout", "1")
    assert time.monotonic() - started < BOUND
    assert result.exit_code == 6, result.stderr
    assert "Traceback" not in result.stderr
