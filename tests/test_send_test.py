"""`cmdai send-test` and `cmdai connect --send-test`, against real loopback servers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from cmdai_cli.receiver import ListenOptions, Receiver

from .conftest import WRITE_KEY, Cli


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as receiver:
        yield receiver


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_local_needs_no_profile_and_no_network(cli: Cli, config_path: Path) -> None:
    result = cli("send-test", "--local")
    assert result.exit_code == 0, result.stderr
    assert "accepted (HTTP 200)" in result.stdout
    assert "Arrived at the local receiver" in result.stdout
    assert "Command AI Test Event" in result.stdout
    message_id = result.stdout.split("messageId", 1)[1].split()[0]
    assert message_id.startswith("cmdai-test-")
    assert f'"messageId": "{message_id}"' in result.stdout
    assert not config_path.exists()


def test_local_json(cli: Cli) -> None:
    result = cli("send-test", "--local", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "accepted" and data["httpStatus"] == 200
    assert data["event"] == "Command AI Test Event"
    assert data["host"].startswith("http://127.0.0.1:")
    received = data["received"]["message"]
    assert received["messageId"] == data["messageId"]
    assert received["properties"]["test"] is True
    assert "writeKey" not in received


@pytest.mark.parametrize(
    ("event", "name", "kind"),
    [
        ("opened", "Opened", "opened"),
        ("Nudge Clicked", "Nudge Clicked", "nudge_clicked"),
        ("SHORTCUT_EDITED", "User Changed Shortcut", "shortcut_edited"),
    ],
)
def test_local_catalogue_events(cli: Cli, event: str, name: str, kind: str) -> None:
    result = cli("send-test", "--local", "--json", "--event", event, "--user-id", "user-77")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    message = data["received"]["message"]
    assert data["event"] == message["event"] == name
    assert message["properties"]["type"] == kind
    assert message["userId"] == "user-77"


def test_an_event_outside_the_catalogue_needs_custom(cli: Cli) -> None:
    # Deliberate change: such a name used to be sent silently as a custom event, so a
    # typo reached the source; now it is refused with the nearest names.
    result = cli("send-test", "--local", "--event", "opend", "--user-id", "user-77")
    assert result.exit_code == 2
    assert "did you mean 'Opened'?" in result.stderr
    assert "--custom" in result.stderr
    result = cli(
        "send-test", "--local", "--json", "--event", "Checklist Magic", "--custom",
        "--user-id", "user-77",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    message = json.loads(result.stdout)["received"]["message"]
    assert message["event"] == "Checklist Magic"
    assert message["properties"]["type"] == "checklist_magic"


def test_booted_is_an_identify(cli: Cli) -> None:
    result = cli("send-test", "--local", "--json", "--event", "booted", "--anonymous-id", "a-1")
    data = json.loads(result.stdout)
    assert data["type"] == "identify" and data["event"] == "CommandBar booted"
    assert data["received"]["message"]["traits"]["formFactor"] == {"type": "modal"}
    assert data["received"]["message"]["anonymousId"] == "a-1"


def test_properties(cli: Cli) -> None:
    result = cli(
        "send-test", "--local", "--json", "--property", "plan=pro", "--property", "seats=3",
        "--property", "tags=[\"a\"]", "--property", "note=a=b",
    )  # fmt: skip
    props = json.loads(result.stdout)["received"]["message"]["properties"]
    assert (props["plan"], props["seats"], props["tags"], props["note"]) == ("pro", 3, ["a"], "a=b")


@pytest.mark.parametrize(
    "args",
    [
        ["--user-id", "u", "--anonymous-id", "a"],
        ["--property", "novalue"],
        ["--host", "http://127.0.0.1:1"],
        ["--event", " "],
    ],
)
def test_usage_errors(cli: Cli, args: list[str]) -> None:
    result = cli("send-test", "--local", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("cmdai: error:")


def test_no_write_key_is_a_config_error(cli: Cli) -> None:
    result = cli("send-test")
    assert result.exit_code == 3
    assert "cmdai connect" in result.stderr


def test_remote_accepted(cli: Cli, rx: Receiver, keyed: None) -> None:
    result = cli("send-test", "--host", rx.url)
    assert result.exit_code == 0, result.stderr
    assert f"to {rx.url}" in result.stdout
    # A collector on this machine is not Segment: no pointer to Segment's Source Debugger.
    assert "is on this machine, not Segment" in result.stdout
    assert "Look for it in Segment's Source Debugger" not in result.stdout
    assert f"cmdai expect --from {rx.url}" in result.stdout
    [arrived] = rx.messages()
    assert arrived.message["messageId"] in result.stdout


def test_the_user_is_the_events_end_user(cli: Cli, rx: Receiver, keyed: None) -> None:
    named = cli("send-test", "--host", rx.url, "--event", "opened", "--user-id", "alice")
    assert named.exit_code == 0, named.stderr
    anonymous = cli("send-test", "--host", rx.url, "--event", "opened")
    assert anonymous.exit_code == 0, anonymous.stderr
    first, second = (received.message for received in rx.messages())
    assert first["userId"] == "alice"
    assert first["properties"]["end_user"] == {"slug": "alice", "hmac": None}
    assert second.get("userId") is None and second["properties"]["end_user"] is None


def test_remote_json(cli: Cli, rx: Receiver, keyed: None) -> None:
    result = cli("send-test", "--host", rx.url, "--json", "--event", "command_execution")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("event", "host", "status")} == {
        "event": "Command Execution",
        "host": rx.url,
        "status": "accepted",
    }
    assert rx.messages()[0].message["messageId"] == data["messageId"]


def test_region_comes_from_the_profile(cli: Cli, rx: Receiver, keyed: None) -> None:
    assert cli("connect", "--write-key", WRITE_KEY, "--host", rx.url).exit_code == 0
    result = cli("send-test", "--json")
    assert json.loads(result.stdout)["host"] == rx.url
    assert len(rx.messages()) == 1


def test_a_401_for_the_key_is_exit_5(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # Segment itself takes any key (the CDN check tells); a 401 still comes from
    # services in between, and from `listen --reject-wrong-key`.
    with Receiver(ListenOptions(write_key="some-other-key-123", reject_wrong_key=True)) as other:
        monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
        result = cli("send-test", "--host", other.url, "--json")
    assert result.exit_code == 5
    assert json.loads(result.stdout)["status"] == "refused"
    assert "HTTP 401" in result.stderr and "write key" in result.stderr


@pytest.mark.parametrize("status", [400, 403, 413])
def test_other_refusals(cli: Cli, httpserver: HTTPServer, keyed: None, status: int) -> None:
    body = json.dumps({"code": "nope", "message": f"refused with {status}"})
    httpserver.expect_request("/v1/batch").respond_with_response(Response(body, status=status))
    result = cli("send-test", "--host", httpserver.url_for("").rstrip("/"))
    assert result.exit_code == 5
    assert f"HTTP {status}: refused with {status}" in result.stderr
    assert f"refused (HTTP {status}" in result.stdout


def test_unreachable_exit_6(cli: Cli, keyed: None) -> None:
    result = cli("send-test", "--host", f"http://127.0.0.1:{free_port()}", "--json")
    assert result.exit_code == 6
    assert json.loads(result.stdout)["status"] == "unreachable"
    assert "could not connect" in result.stderr
    said = cli("send-test", "--host", f"http://127.0.0.1:{free_port()}")
    assert said.exit_code == 6
    assert said.stdout.startswith('Not sent: track "Command AI Test Event" could not reach')
    assert "Sent " not in said.stdout and "Debugger" not in said.stdout


class _Silent(BaseHTTPRequestHandler):
    # Answers 200 only once the test is over, or after 8 s: a client that waited that
    # long would report the event accepted, and the test fail.
    release = threading.Event()

    def do_POST(self) -> None:
        self.release.wait(8)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_silent_host_times_out(cli: Cli, keyed: None) -> None:
    _Silent.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = cli("send-test", "--host", url, "--timeout", "1")
    finally:
        _Silent.release.set()
        server.shutdown()
        server.server_close()
    assert result.exit_code == 6
    assert "did not answer" in result.stderr


def test_oversized_property_is_not_sent(cli: Cli, rx: Receiver, keyed: None) -> None:
    result = cli("send-test", "--host", rx.url, "--property", "blob=" + "x" * 40_000)
    assert result.exit_code == 4
    assert "32 KB" in result.stderr
    assert rx.stats.requests == 0


def test_connect_then_send_test(cli: Cli, rx: Receiver, config_path: Path) -> None:
    result = cli("connect", "--write-key", WRITE_KEY, "--host", rx.url, "--send-test")
    assert result.exit_code == 0, result.stderr
    assert "Stored write key" in result.stdout and "accepted (HTTP 200)" in result.stdout
    assert config_path.exists()
    assert len(rx.messages()) == 1


def test_connect_send_test_json_and_refusal(cli: Cli, config_path: Path) -> None:
    with Receiver(ListenOptions(write_key="some-other-key-123", reject_wrong_key=True)) as other:
        result = cli(
            "connect", "--write-key", WRITE_KEY, "--host", other.url, "--send-test", "--json"
        )
    assert result.exit_code == 5
    data = json.loads(result.stdout)
    assert data["send_test"]["status"] == "refused"
    assert data["write_key"] != WRITE_KEY
    assert WRITE_KEY in config_path.read_text()


def test_an_empty_host_is_a_usage_error(cli: Cli, keyed: None) -> None:
    result = cli("send-test", "--host", "")
    assert result.exit_code == 2
    assert "not an http(s) URL" in result.stderr
