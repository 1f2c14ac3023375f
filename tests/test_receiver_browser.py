"""The receiver speaks analytics.js: short paths, text/plain bodies, CORS and the CDN settings."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.browser import api_host, cors_headers
from cmdai_cli.segment.messages import MESSAGE_TYPES

from .receiver_http import KEY, basic, msg

ORIGIN = "http://127.0.0.1:1234"


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver(ListenOptions(write_key=KEY)) as receiver:
        yield receiver


def request(
    rx: Receiver, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        return response.status, dict(response.getheaders()), json.loads(raw) if raw else None
    finally:
        conn.close()


def browser_post(rx: Receiver, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str]]:
    # As analytics.js sends: text/plain, writeKey in the body and Basic auth, cross-origin.
    headers = {"Content-Type": "text/plain", "Origin": ORIGIN, **basic(body["writeKey"])}
    status, answer_headers, _ = request(rx, "POST", path, body, headers)
    return status, answer_headers


@pytest.mark.parametrize(
    ("path", "kind"),
    [(f"/v1/{kind[0]}", kind) for kind in MESSAGE_TYPES],
)
def test_short_paths_take_their_type(rx: Receiver, path: str, kind: str) -> None:
    status, headers = browser_post(rx, path, {**msg(kind), "writeKey": KEY})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    [received] = rx.messages()
    assert received.message["type"] == kind and received.path == path
    assert received.flags == () and "writeKey" not in received.message


@pytest.mark.parametrize("path", ["/v1/b", "/v1/import"])
def test_batch_paths_of_analytics_js_and_the_import_alias(rx: Receiver, path: str) -> None:
    body = {"batch": [msg(), msg("page")], "writeKey": KEY, "sentAt": "2024-05-01T00:00:00Z"}
    assert browser_post(rx, path, body)[0] == 200
    assert [r.message["type"] for r in rx.messages()] == ["track", "page"]
    assert all(r.message["sentAt"] == "2024-05-01T00:00:00Z" for r in rx.messages())


def test_metrics_are_acknowledged_and_not_stored(rx: Receiver) -> None:
    metrics = {"series": [{"type": "Counter", "metric": "analytics_js.invoke", "value": 1}]}
    status, headers, answer = request(rx, "POST", "/v1/m", metrics, {"Origin": ORIGIN})
    assert (status, answer) == (200, {"success": True})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert rx.messages() == [] and rx.stats.accepted == 0


def test_preflight_allows_what_the_page_asks_for(rx: Receiver) -> None:
    asked = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    status, headers, _ = request(rx, "OPTIONS", "/v1/t", None, asked)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert rx.stats.requests == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/t", None, 400),
        ("POST", "/v1/nowhere", {}, 404),
        ("GET", "/nowhere", None, 404),
        ("PUT", "/v1/t", {}, 405),
    ],
)
def test_cors_headers_on_every_answer(
    rx: Receiver, method: str, path: str, body: Any, status: int
) -> None:
    got, headers, _ = request(rx, method, path, body, {"Origin": ORIGIN})
    assert got == status
    assert headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/cmdai/summary", 200),
        ("GET", "/cmdai/messages", 200),
        ("POST", "/cmdai/reset", 200),
        ("GET", "/cmdai/reset", 405),
        ("GET", "/cmdai/nowhere", 404),
    ],
)
def test_the_inspection_api_answers_with_cors_too(
    rx: Receiver, method: str, path: str, status: int
) -> None:
    got, headers, _ = request(rx, method, path, None, {"Origin": ORIGIN})
    assert got == status
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.parametrize("path", ["/cmdai/summary", "/cmdai/messages", "/cmdai/reset"])
def test_the_inspection_api_answers_a_preflight(rx: Receiver, path: str) -> None:
    asked = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, headers, body = request(rx, "OPTIONS", path, None, asked)
    assert (status, body) == (200, {"success": True})
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "content-type"


def test_settings_document_sends_the_page_back_here(rx: Receiver) -> None:
    status, headers, settings = request(rx, "GET", f"/v1/projects/{KEY}/settings")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    segment = settings["integrations"]["Segment.io"]
    assert segment["apiHost"] == f"127.0.0.1:{rx.port}/v1" and segment["protocol"] == "http"
    assert segment["apiKey"] == KEY
    assert settings["remotePlugins"] == [] and list(settings["integrations"]) == ["Segment.io"]


def test_settings_for_another_key_are_not_found_as_on_segments_cdn(rx: Receiver) -> None:
    status, _, answer = request(rx, "GET", "/v1/projects/another-key-123/settings")
    assert status == 404 and answer["success"] is False


def test_settings_for_any_key_without_a_write_key() -> None:
    with Receiver() as rx:
        status, _, settings = request(rx, "GET", "/v1/projects/any-key-1/settings")
        assert status == 200 and settings["integrations"]["Segment.io"]["apiKey"] == "any-key-1"


def test_api_host_comes_from_the_host_header_when_it_is_a_host() -> None:
    assert api_host("localhost:8765", "127.0.0.1:1") == "localhost:8765/v1"
    assert api_host("[::1]:8765", "127.0.0.1:1") == "[::1]:8765/v1"
    assert api_host('evil"/><script>', "127.0.0.1:1") == "127.0.0.1:1/v1"
    assert api_host(None, "127.0.0.1:1") == "127.0.0.1:1/v1"


def test_cors_without_an_origin_and_odd_requested_headers() -> None:
    assert cors_headers(None) == {"Access-Control-Allow-Origin": "*"}
    odd = cors_headers(ORIGIN, "x\r\nSet-Cookie: a=b", preflight=True)
    assert "Set-Cookie" not in odd["Access-Control-Allow-Headers"]
