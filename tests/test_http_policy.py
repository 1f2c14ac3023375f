"""The HTTP client policy (`cmdai_cli.http_policy`) and the clients that keep it."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest

from cmdai_cli import http_errors, http_policy
from cmdai_cli.errors import ExitCode, RemoteRefused
from cmdai_cli.segment.sender import post_batch
from tests.conftest import WRITE_KEY, Cli
from tests.hostile_server import HostileServer, gzip_bomb


@pytest.fixture
def server() -> Iterator[HostileServer]:
    gzip_bomb()
    with HostileServer() as hostile:
        yield hostile


def fetch(server: HostileServer, *, limit: int = 1024, seconds: float = 0.6) -> httpx.Response:
    with http_policy.client(timeout=5.0) as client:
        return http_policy.send(
            client, "GET", server.url + "/x?key=s3cret", service="the test", limit=limit,
            seconds=seconds,
        )  # fmt: skip


@pytest.mark.parametrize("mode", ["trickle-headers", "trickle-body"])
def test_a_trickle_ends_at_the_whole_request_deadline(server: HostileServer, mode: str) -> None:
    # A byte every 0.2 s keeps every read under httpx's own time-out of 5 s.
    server.mode = mode
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException, match="whole-request deadline"):
        fetch(server, limit=2 * 1024 * 1024, seconds=0.6)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("mode", ["gzip-bomb", "huge", "endless"])
def test_an_answer_past_its_cap_is_refused_naming_the_limit(
    server: HostileServer, mode: str
) -> None:
    server.mode = mode
    started = time.monotonic()
    with pytest.raises(http_policy.AnswerTooLarge) as info:
        fetch(server, limit=64 * 1024, seconds=5)
    assert time.monotonic() - started < 2
    assert info.value.exit_code == ExitCode.REFUSED
    assert "more than 64 KiB to GET /x" in info.value.message
    assert "s3cret" not in info.value.message


def test_a_redirect_comes_back_as_an_answer_and_is_refused(server: HostileServer) -> None:
    server.mode = "redirect"
    response = fetch(server)
    assert response.status_code == 307
    assert server.thief.requests == []
    error = http_errors.error_for_response(
        307, response.headers, b"", service="the test", method="GET", url=server.url + "/x"
    )
    assert isinstance(error, RemoteRefused) and error.exit_code == ExitCode.REFUSED
    assert f"redirecting to {server.thief.url}/x" in error.message
    # The Location's query (here the key it copied) is never shown.
    assert "s3cret" not in error.message and "follows no redirects" in error.message


def test_the_inflater_keeps_to_its_limit() -> None:
    data = b"a" * 10_000
    for encoded, encoding in [
        (gzip.compress(data), "gzip"),
        (zlib.compress(data), "deflate"),
        (zlib.compress(data)[2:-4], "deflate"),  # raw deflate, as some servers send it
        (data, None),
    ]:
        inflater = http_policy.Inflater(encoding, 10_000)
        inflater.feed(encoded)
        assert inflater.body() == data
        small = http_policy.Inflater(encoding, 9_999)
        with pytest.raises(OverflowError):
            small.feed(encoded)
    with pytest.raises(ValueError):
        http_policy.Inflater("br", 10)


def test_the_tracking_api_session_follows_no_redirect(server: HostileServer) -> None:
    server.mode = "redirect"
    result = post_batch([], write_key=WRITE_KEY, host=server.url, timeout=2)
    assert result.status == "refused" and result.http_status == 307
    assert "follows no redirects" in (result.message or "")
    assert server.thief.requests == []


@pytest.mark.parametrize("mode", ["trickle-headers", "trickle-body"])
def test_the_tracking_api_session_ends_at_its_time_out(server: HostileServer, mode: str) -> None:
    server.mode = mode
    started = time.monotonic()
    result = post_batch([], write_key=WRITE_KEY, host=server.url, timeout=0.6)
    assert time.monotonic() - started < 1.5
    assert result.status == "unreachable"


@pytest.mark.parametrize(
    "args",
    [
        ["expect", "--from", "http://user:PASSWORD9@127.0.0.1:1", "--event", "Opened"],
        ["expect", "--from", "https://user:PASSWORD9@collector.example", "--event", "Opened"],
        ["plan", "pull", "--tracking-plan", "tp", "--token", "t", "--api-host",
         "https://user:PASSWORD9@api.example"],
        ["connect", "--write-key", WRITE_KEY, "--cdn-host", "https://u:PASSWORD9@cdn.example"],
    ],
    ids=["expect-http", "expect-https", "plan-pull", "connect"],
)  # fmt: skip
def test_credentials_in_a_url_are_refused_without_showing_them(cli: Cli, args: list[str]) -> None:
    cli.secrets.add("PASSWORD9")
    result = cli(*args)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "must not carry credentials in the URL" in result.stderr
