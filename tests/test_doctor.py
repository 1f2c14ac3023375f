"""`cmdai doctor` against real loopback servers: the receiver, and pytest-httpserver."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cmdai_cli import doctor, profile
from cmdai_cli.receiver import ListenOptions, Receiver

from .conftest import SHARED_SECRET, TOKEN, WRITE_KEY


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as receiver:
        yield receiver


@pytest.fixture
def segment_env(monkeypatch: pytest.MonkeyPatch, rx: Receiver) -> Receiver:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("CMDAI_SEGMENT_HOST", rx.url)
    # The receiver also serves the CDN's settings document, for WRITE_KEY only.
    monkeypatch.setenv("CMDAI_CDN_HOST", rx.url)
    return rx


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checks(result: Any) -> dict[str, dict[str, Any]]:
    data = json.loads(result.stdout)
    return {check["name"]: check for check in data["checks"]}


def test_all_pass_sends_no_event(cli, segment_env: Receiver) -> None:
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["profile"] == "default"
    found = {check["name"]: check["status"] for check in data["checks"]}
    assert found == {
        "profile file": "pass",
        "write key": "pass",
        "segment host": "pass",
        "source": "pass",
        "command ai destination": "skip",
        "region": "pass",
        "webhook": "skip",
        "public api": "skip",
        "source events": "skip",
    }
    # One real request reached the Tracking API, carrying no message (the settings
    # document is a GET, not counted as a Tracking API request).
    assert segment_env.stats.requests == 1
    assert segment_env.messages() == []


def test_human_output(cli, segment_env: Receiver) -> None:
    result = cli("doctor")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS  profile file")
    assert any(line.startswith("PASS  segment host") and segment_env.url in line for line in lines)
    assert any(line.startswith("SKIP  webhook") for line in lines)
    assert "wk_T****" in result.stdout


def test_send_test_sends_the_test_event(cli, segment_env: Receiver) -> None:
    result = cli("doctor", "--send-test", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    arrived = segment_env.wait_for(1, timeout=5)
    assert [r.message.get("event") for r in arrived] == ["Command AI Test Event"]
    assert "accepted test event" in checks(result)["segment host"]["detail"]


def doctor_on_a_terminal(extra_env: dict[str, str]) -> str:
    """`cmdai doctor` as a real process whose stdout is a terminal (a pty)."""
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "cmdai_cli", "doctor"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", **extra_env},
    ) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the pty closes with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode()


def test_on_a_terminal_checks_read_at_a_glance(cli, segment_env: Receiver) -> None:
    statuses = [check["status"] for check in checks(cli("doctor", "--json")).values()]
    screen = doctor_on_a_terminal({"NO_COLOR": ""})
    assert "\x1b[" in screen  # coloured
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines[0].startswith("\x1b[32m✓") and "profile file" in lines[0]
    assert any(line.startswith("\x1b[33m-") and "webhook" in line for line in lines)
    assert "PASS" not in screen
    passed, skipped = statuses.count("pass"), statuses.count("skip")
    assert f"{passed} passed" in screen and f"{skipped} skipped" in screen
    plain = doctor_on_a_terminal({"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "✓" not in plain
    assert plain.splitlines()[0].startswith("PASS  profile file")


def test_a_401_for_the_key_fails_with_a_hint(cli, monkeypatch) -> None:
    # Segment itself takes any key (the source check tells); a 401 still comes from
    # services in between, and from `listen --reject-wrong-key`.
    monkeypatch.setenv("CMDAI_WRITE_KEY", "another-key-0123456789")
    with Receiver(ListenOptions(write_key=WRITE_KEY, reject_wrong_key=True)) as rx:
        monkeypatch.setenv("CMDAI_SEGMENT_HOST", rx.url)
        result = cli("doctor", "--json")
    assert result.exit_code == 1
    segment = checks(result)["segment host"]
    assert segment["status"] == "fail"
    assert "401" in segment["detail"]
    assert "write key" in segment["hint"]
    assert "2 of 9 checks failed: segment host, source" in result.stderr
    assert "another-key-0123456789" not in result.stdout + result.stderr


def test_unreachable_host(cli, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    result = cli("doctor", "--host", f"http://127.0.0.1:{closed_port()}", "--json")
    assert result.exit_code == 1
    segment = checks(result)["segment host"]
    assert segment["status"] == "fail"
    assert "did not answer" in segment["detail"]
    assert segment["hint"]


def test_a_host_that_does_not_answer_like_segment(cli, httpserver: HTTPServer, monkeypatch):
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    httpserver.expect_request("/v1/batch", method="POST").respond_with_data(
        "<html>hello</html>", content_type="text/html"
    )
    result = cli("doctor", "--host", httpserver.url_for("").rstrip("/"), "--json")
    assert result.exit_code == 1
    segment = checks(result)["segment host"]
    assert segment["status"] == "fail"
    assert "not as Segment does" in segment["detail"]
    assert "api.segment.io" in segment["hint"]


def test_no_write_key(cli) -> None:
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    found = checks(result)
    assert found["write key"]["status"] == "fail"
    assert "CMDAI_WRITE_KEY" in found["write key"]["hint"]
    assert found["segment host"]["status"] == "skip"


def test_invalid_write_key(cli, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", "short")
    found = checks(cli("doctor", "--json"))
    assert found["write key"]["status"] == "fail"
    assert "not usable" in found["write key"]["detail"]


# ---------------------------------------------------------------------- the profile file


def test_profile_file_permissions(cli, segment_env: Receiver, config_path: Path) -> None:
    profile.save_profile(profile.Store(), "default", {"region": "us"})
    assert checks(cli("doctor", "--json"))["profile file"]["status"] == "pass"
    if os.name != "posix":
        pytest.skip("permissions are POSIX")
    config_path.chmod(0o644)
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    found = checks(result)["profile file"]
    assert found["status"] == "fail"
    assert "644" in found["detail"]
    assert f"chmod 600 {config_path}" in found["hint"]
    config_path.chmod(0o600)
    config_path.parent.chmod(0o777)
    try:
        found = checks(cli("doctor", "--json"))["profile file"]
    finally:
        config_path.parent.chmod(0o700)
    assert found["status"] == "fail"
    assert "directory" in found["detail"]


def test_profile_file_that_does_not_parse(cli, segment_env: Receiver, config_path: Path) -> None:
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text("[profiles.default\nwrite_key = 1\n")
    config_path.chmod(0o600)
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    found = checks(result)
    assert found["profile file"]["status"] == "fail"
    assert "invalid TOML" in found["profile file"]["detail"]
    assert {found[name]["status"] for name in ("write key", "segment host")} == {"skip"}
    assert segment_env.stats.requests == 0


def test_unknown_profile_setting_from_env_is_reported(cli, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_REGION", "mars")
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    found = checks(result)
    assert found["settings"]["status"] == "fail"
    assert "CMDAI_REGION" in found["settings"]["detail"]


def test_bad_region_flag_is_a_usage_error(cli) -> None:
    result = cli("doctor", "--region", "mars")
    assert result.exit_code == 2
    assert "mars" in result.stderr


# ---------------------------------------------------------------------- webhook


def test_webhook_answers_and_is_signed(cli, segment_env, httpserver: HTTPServer, monkeypatch):
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response("{}", status=200, content_type="application/json")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    monkeypatch.setenv("CMDAI_WEBHOOK_URL", httpserver.url_for("/hook"))
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.stdout
    assert checks(result)["webhook"]["status"] == "pass"
    [request] = seen
    body = request.get_data()
    assert "userId" not in json.loads(body)
    expected = hmac.new(SHARED_SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert request.headers["X-Signature"] == expected


@pytest.mark.parametrize(("status", "hint"), [(404, "webhook URL"), (401, "shared secret")])
def test_webhook_refusal(cli, segment_env, httpserver: HTTPServer, monkeypatch, status, hint):
    httpserver.expect_request("/hook").respond_with_json({"error": "nope"}, status=status)
    monkeypatch.setenv("CMDAI_WEBHOOK_URL", httpserver.url_for("/hook"))
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    webhook = checks(result)["webhook"]
    assert webhook["status"] == "fail"
    assert str(status) in webhook["detail"]
    assert hint in webhook["hint"]


def test_webhook_unreachable(cli, segment_env, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_WEBHOOK_URL", f"http://127.0.0.1:{closed_port()}/hook")
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    assert checks(result)["webhook"]["status"] == "fail"


# ---------------------------------------------------------------------- Public API


def test_public_api_token_accepted(cli, segment_env, httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request(
        "/sources", method="GET", headers={"Authorization": f"Bearer {TOKEN}"}
    ).respond_with_json({"data": {"sources": [], "pagination": {}}})
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_API_HOST", httpserver.url_for("").rstrip("/"))
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.stdout
    assert checks(result)["public api"]["status"] == "pass"


def test_public_api_token_refused(cli, segment_env, httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/sources").respond_with_json(
        {"errors": [{"type": "unauthorized", "message": "invalid token"}]}, status=401
    )
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_API_HOST", httpserver.url_for("").rstrip("/"))
    result = cli("doctor")
    assert result.exit_code == 1
    assert "FAIL  public api" in result.stdout
    assert "invalid token" in result.stdout
    assert "hint:" in result.stdout
    # One request, no retries: a pipeline wants the answer now.
    assert len(httpserver.log) == 1


# ---------------------------------------------------------------------- core API


def test_report_is_ok_only_without_failures() -> None:
    report = doctor.DoctorResult("default", [doctor.Check("a", "pass", "x")])
    assert report.ok
    report.checks.append(doctor.Check("b", "skip", "y"))
    assert report.ok
    report.checks.append(doctor.Check("c", "fail", "z", "do this"))
    assert not report.ok
    assert [c.name for c in report.failed] == ["c"]
    assert report.as_json()["ok"] is False


def test_webhook_url_flag(cli, segment_env, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/flagged", method="POST").respond_with_json({})
    result = cli("doctor", "--webhook-url", httpserver.url_for("/flagged"), "--json")
    assert result.exit_code == 0, result.stdout
    assert checks(result)["webhook"]["status"] == "pass"
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--webhook-url", "http://example.com/hook"],
        ["--api-host", "ftp://example.com"],
        ["--host", "not a url"],
    ],
)
def test_bad_url_flags_are_usage_errors(cli, args: list[str]) -> None:
    result = cli("doctor", *args)
    assert result.exit_code == 2
    assert args[0] in result.stderr


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback port that takes connections and never answers: every request times out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# One rule for every command: answered and refused (4xx, 429 included once retries are
# spent) is a refusal; 5xx, time-outs and refused connections mean the service is not
# there to do the work. Doctor reports either as a failed check (exit 1) that says which.
@pytest.mark.parametrize(
    ("status", "words"),
    [
        (400, "answered 400 Bad Request"),
        (401, "answered 401 Unauthorized"),
        (429, "answered 429 Too Many Requests"),
        (500, "answered 500 Internal Server Error"),
        (503, "answered 503 Service Unavailable"),
    ],
)
def test_public_api_error_answers(
    cli, segment_env, httpserver: HTTPServer, monkeypatch, status: int, words: str
) -> None:
    httpserver.expect_request("/sources").respond_with_json(
        {"errors": [{"type": "x", "message": "no"}]}, status=status
    )
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_API_HOST", httpserver.url_for("").rstrip("/"))
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    check = checks(result)["public api"]
    assert check["status"] == "fail"
    assert words in check["detail"]
    assert check["hint"] or status == 400
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("where", ["timeout", "refused"])
def test_public_api_not_answering(cli, segment_env, monkeypatch, silent_url, where) -> None:
    url = silent_url if where == "timeout" else f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_API_HOST", url)
    result = cli("doctor", "--json", "--timeout", "0.5")
    assert result.exit_code == 1
    check = checks(result)["public api"]
    assert check["status"] == "fail"
    expected = "did not answer in time" if where == "timeout" else "could not be reached"
    assert expected in check["detail"]


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
def test_segment_error_answers(cli, httpserver: HTTPServer, monkeypatch, status: int) -> None:
    httpserver.expect_request("/v1/batch").respond_with_json({"error": "no"}, status=status)
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("CMDAI_SEGMENT_HOST", httpserver.url_for("").rstrip("/"))
    result = cli("doctor", "--json", "--timeout", "2")
    assert result.exit_code == 1
    check = checks(result)["segment host"]
    assert check["status"] == "fail"
    said = "failed" if status >= 500 else "refused"
    assert f"{said}: HTTP {status}" in check["detail"]
    assert check["hint"]


def test_segment_host_timing_out(cli, monkeypatch, silent_url) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("CMDAI_SEGMENT_HOST", silent_url)
    result = cli("doctor", "--json", "--timeout", "0.5")
    assert result.exit_code == 1
    check = checks(result)["segment host"]
    assert check["status"] == "fail"
    assert "did not answer" in check["detail"]
