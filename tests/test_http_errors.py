from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer

from cmdai_cli import redact
from cmdai_cli.errors import CmdaiError, ExitCode, RemoteRefused, RemoteUnreachable
from cmdai_cli.http_errors import (
    error_for_exception,
    error_for_failure,
    error_for_response,
    problems,
)


def _answer(
    server: HTTPServer,
    status: int,
    body: object = None,
    text: str | None = None,
    service: str = "S",
) -> CmdaiError:
    """What the mapper makes of a real answer, given as the plain values it takes."""
    if text is not None:
        server.expect_request("/thing").respond_with_data(text, status=status)
    else:
        server.expect_request("/thing").respond_with_json(body, status=status)
    url = server.url_for("/thing") + "?token=supersecretquery"
    response = httpx.get(url)
    return error_for_response(
        response.status_code,
        response.headers,
        response.content,
        service=service,
        method="GET",
        url=url,
    )


def test_401_is_refused_with_a_token_hint(httpserver: HTTPServer) -> None:
    body = {"errors": [{"type": "unauthorized", "message": "The access token is invalid"}]}
    error = _answer(httpserver, 401, body, service="Segment Public API")
    assert isinstance(error, RemoteRefused)
    assert error.status == 401
    assert error.exit_code == ExitCode.REFUSED
    assert "Segment Public API answered 401 Unauthorized to GET /thing" in error.message
    assert "The access token is invalid" in error.message
    assert error.hint and "token" in error.hint
    # The query string may carry credentials: never in a message.
    assert "supersecretquery" not in error.message


def test_422_names_each_bad_field(httpserver: HTTPServer) -> None:
    body = {
        "errors": [
            {"type": "validation", "message": "is required", "field": "settings.orgId"},
            {"type": "validation", "message": "must be FQL", "field": "trigger"},
        ]
    }
    error = _answer(httpserver, 422, body)
    assert "settings.orgId: is required" in error.message
    assert "trigger: must be FQL" in error.message


def test_5xx_is_unreachable(httpserver: HTTPServer) -> None:
    error = _answer(httpserver, 503, text="<html>busy</html>")
    assert isinstance(error, RemoteUnreachable)
    assert error.exit_code == ExitCode.UNREACHABLE
    assert "<html>" not in error.message


def test_a_plain_text_body_is_the_detail(httpserver: HTTPServer) -> None:
    error = _answer(httpserver, 409, text="already exists")
    assert error.message.endswith(": already exists")


def test_secrets_echoed_by_a_server_are_masked(httpserver: HTTPServer) -> None:
    secret = "sk_live_ECHOED_0123456789"
    redact.register(secret)
    body = {"error": f"bad key {secret}"}
    error = _answer(httpserver, 400, body)
    assert secret not in error.message
    assert "bad key sk_l****" in error.message


def test_problem_shapes() -> None:
    assert problems({"error": {"message": "x"}})[0].message == "x"
    assert problems({"message": "y"})[0].message == "y"
    assert problems({"errors": ["z"]})[0].message == "z"
    assert problems([1, 2]) == []


def test_a_refused_connection_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as info:
        httpx.get(f"http://127.0.0.1:{port}/x")
    error = error_for_exception(info.value, service="S")
    assert isinstance(error, RemoteUnreachable)
    assert f"S at 127.0.0.1:{port} could not be reached (GET /x)" in error.message


@pytest.fixture
def silent_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_no_answer_in_time_is_unreachable(silent_port: int) -> None:
    with pytest.raises(httpx.TimeoutException) as info:
        httpx.get(f"http://127.0.0.1:{silent_port}/x", timeout=0.2)
    error = error_for_exception(info.value, service="S")
    assert "did not answer in time" in error.message


# The one rule: the service answered and refused (any 4xx, 429 included) -> exit 5; it
# failed (5xx), as when it cannot be reached or times out -> exit 6.
@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.REFUSED),
        (401, ExitCode.REFUSED),
        (404, ExitCode.REFUSED),
        (429, ExitCode.REFUSED),
        (500, ExitCode.UNREACHABLE),
        (502, ExitCode.UNREACHABLE),
        (503, ExitCode.UNREACHABLE),
    ],
)
def test_one_exit_rule(httpserver: HTTPServer, status: int, code: ExitCode) -> None:
    error = _answer(httpserver, status, {"error": "no"})
    assert error.exit_code == code


def test_a_text_body_is_read_in_the_charset_it_names() -> None:
    body = "déjà là".encode("latin-1")
    headers = {"content-type": "text/plain; charset=ISO-8859-1"}
    error = error_for_response(409, headers, body, service="S", method="PUT", url="http://h/x")
    assert error.message == "S answered 409 Conflict to PUT /x: déjà là"


def test_a_failure_names_the_host_without_credentials_or_default_port() -> None:
    error = error_for_failure(
        "timeout",
        "no answer within 1 s",
        service="S",
        method="POST",
        url="https://user:pw@example.com:443/hook?sig=secret",
    )
    assert isinstance(error, RemoteUnreachable)
    assert (
        error.message
        == "S at example.com did not answer in time (POST /hook): no answer within 1 s"
    )
    other = error_for_failure("connect", "refused", service="S", url="http://[::1]:8080/")
    assert other.message == "S at [::1]:8080 could not be reached: refused"
