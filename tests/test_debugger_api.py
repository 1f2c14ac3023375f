"""The Source Debugger's server side: its page and headers, views, stream and token gate."""

from __future__ import annotations

import fnmatch
import http.client
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.ui import ASSETS, CSP, asset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UI = Path(__file__).parent.parent / "src" / "cmdai_cli" / "receiver" / "ui"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(ListenOptions(keep=200_000)) as started:
        yield started


def post(url: str, messages: list[dict[str, Any]]) -> None:
    response = httpx.post(url + "/v1/batch", json={"batch": messages})
    assert response.status_code == 200, response.text


def track(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Opened" if n % 2 else "Closed",
        "userId": f"user-{n % 7}",
        "messageId": f"m-{n}",
        "properties": {"n": n},
        **extra,
    }


def test_the_page_is_served_with_a_policy_against_inline_script_and_other_origins(
    receiver: Receiver,
) -> None:
    page = httpx.get(receiver.url + "/cmdai/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == CSP
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # No inline script, no inline handler, nothing from elsewhere.
    html = page.text
    assert "<script>" not in html and not re.search(r"\son[a-z]+\s*=", html)
    assert "http://" not in html and "https://" not in html
    for name in ("app.js", "app.css", "favicon.svg"):
        answer = httpx.get(f"{receiver.url}/cmdai/ui/{name}")
        assert answer.status_code == 200 and answer.headers["content-security-policy"] == CSP
    assert httpx.get(receiver.url + "/cmdai/ui/../store.py").status_code == 404
    assert httpx.get(receiver.url + "/cmdai/ui").headers["location"] == "/cmdai/ui/"


def test_the_page_is_small_and_writes_data_only_as_text() -> None:
    total = sum(len(asset(name)) for name, _ in set(ASSETS.values()))
    assert total < 300_000
    script = (UI / "app.js").read_text()
    for markup_sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert markup_sink not in script


def test_no_other_site_may_read_the_page_views(receiver: Receiver) -> None:
    asked = httpx.get(receiver.url + "/cmdai/page", headers={"Origin": "https://elsewhere.example"})
    assert asked.status_code == 200 and "access-control-allow-origin" not in asked.headers


def test_a_browser_asking_for_the_root_is_sent_to_the_page(receiver: Receiver) -> None:
    browser = httpx.get(receiver.url + "/", headers={"Accept": "text/html,*/*"})
    assert browser.status_code == 303 and browser.headers["location"] == "/cmdai/ui/"
    other = httpx.get(receiver.url + "/")
    assert other.json() == {"success": True, "service": "cmdai listen"}


def test_pages_newest_first_with_filters(receiver: Receiver) -> None:
    post(receiver.url, [track(n) for n in range(250)])
    post(receiver.url, [{"type": "identify", "userId": "who", "traits": {"plan": "x"}}])
    first = httpx.get(receiver.url + "/cmdai/page?type=track&limit=100").json()
    assert first["total"] == 250 and [r["id"] for r in first["rows"][:2]] == ["m-249", "m-248"]
    older = httpx.get(receiver.url + "/cmdai/page?type=track&limit=100&offset=200").json()
    assert [r["id"] for r in older["rows"]][-1] == "m-0" and len(older["rows"]) == 50
    found = httpx.get(receiver.url + "/cmdai/page", params={"q": "OPENED", "user": "user-3"})
    ids = [r["id"] for r in found.json()["rows"]]
    assert ids and all(int(i[2:]) % 2 and int(i[2:]) % 7 == 3 for i in ids)
    one = httpx.get(receiver.url + "/cmdai/page?user=who").json()["rows"]
    assert one[0]["type"] == "identify" and one[0]["user"] == "who" and one[0]["id"] == ""
    bad = httpx.get(receiver.url + "/cmdai/page?nope=1")
    assert bad.status_code == 400 and "nope" in bad.json()["message"]


def test_a_message_opens_by_its_number_with_what_command_ai_records(receiver: Receiver) -> None:
    post(receiver.url, [track(1)])
    seq = httpx.get(receiver.url + "/cmdai/page").json()["rows"][0]["seq"]
    opened = httpx.get(f"{receiver.url}/cmdai/message?seq={seq}").json()
    assert opened["message"]["messageId"] == "m-1"
    assert opened["commandAI"]["webhook"]["record"]["ignored"] is None
    calls = opened["commandAI"]["destination"]
    assert [c["record"]["call"] for c in calls] == ["trackEvent", "trackEvent"]
    assert httpx.get(f"{receiver.url}/cmdai/message?seq=99").status_code == 404
    assert httpx.get(f"{receiver.url}/cmdai/message?seq=x").status_code == 400


def test_the_stream_batches_thousands_of_messages_a_second(receiver: Receiver) -> None:
    parts = urlsplit(receiver.url)
    stream = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    stream.request("GET", "/cmdai/stream")
    answer = stream.getresponse()
    assert answer.status == 200 and answer.getheader("Content-Type") == "text/event-stream"
    sent = 0
    started = time.monotonic()
    with httpx.Client(base_url=receiver.url) as client:
        while sent < 10_000:
            batch = [track(n) for n in range(sent, sent + 500)]
            assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
            sent += len(batch)
    rate = sent / (time.monotonic() - started)
    events: list[dict[str, Any]] = []
    seen = 0
    while seen < sent:
        line = answer.readline()
        assert line, "the stream ended"
        if line.startswith(b"data: ") and line.strip() != b"data: {}":
            event = orjson.loads(line[6:])
            events.append(event)
            seen += event["new"]
    stream.close()
    assert seen == sent and events[-1]["received"] == sent
    assert events[-1]["rows"][0]["id"] == f"m-{sent - 1}" and len(events[-1]["rows"]) <= 50
    # Batched: a few events a second, not one per message.
    assert len(events) <= 5 * (sent / rate) + 3, (len(events), rate)


def test_pages_stay_quick_with_100000_kept(receiver: Receiver) -> None:
    with httpx.Client(base_url=receiver.url) as client:
        for start in range(0, 100_000, 2000):
            batch = [track(n) for n in range(start, start + 2000)]
            assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
        started = time.monotonic()
        page = client.get("/cmdai/page?q=user-3&type=track&limit=100").json()
        took = time.monotonic() - started
    assert page["kept"] == 100_000 and len(page["rows"]) == 100
    assert took < 1.0, took


def test_off_loopback_the_page_and_inspection_api_need_the_token() -> None:
    options = ListenOptions(bind="0.0.0.0")
    with Receiver(options) as receiver:
        token = receiver.ui_token
        assert token and receiver.ui_url.endswith(f"/cmdai/ui/?token={token}")
        url = f"http://127.0.0.1:{receiver.port}"
        # The Tracking API stays as Segment's is.
        post(url, [track(1)])
        for path in ("/cmdai/ui/", "/cmdai/summary", "/cmdai/page", "/cmdai/stream"):
            assert httpx.get(url + path).status_code == 401, path
        wrong = httpx.get(url + "/cmdai/summary", headers={"Authorization": "Bearer nope-nope"})
        assert wrong.status_code == 401
        bearer = httpx.get(url + "/cmdai/summary", headers={"Authorization": f"Bearer {token}"})
        assert bearer.json()["received"] == 1
        entry = httpx.get(f"{url}/cmdai/ui/?token={token}")
        assert entry.status_code == 303 and entry.headers["location"] == "/cmdai/ui/"
        cookie = entry.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        with httpx.Client(base_url=url, cookies=entry.cookies) as browser:
            assert browser.get("/cmdai/ui/").status_code == 200
            assert browser.get("/cmdai/page").json()["total"] == 1
        kept = httpx.get(f"{url}/cmdai/messages?token={token}").json()
        assert kept[0]["message"]["messageId"] == "m-1"


def test_on_loopback_a_page_of_another_name_is_refused(receiver: Receiver) -> None:
    # A web site whose name was rebound to 127.0.0.1 cannot read the messages.
    refused = httpx.get(receiver.url + "/cmdai/page", headers={"Host": "evil.example:80"})
    assert refused.status_code == 403
    assert httpx.get(receiver.url + "/cmdai/page", headers={"Host": "localhost"}).status_code == 200


def test_ui_token_must_be_a_usable_secret() -> None:
    from cmdai_cli.errors import UsageError

    with pytest.raises(UsageError, match="--ui-token"):
        ListenOptions(ui_token="short")
    with Receiver(ListenOptions(ui_token="a-long-enough-token")) as receiver:
        assert httpx.get(receiver.url + "/cmdai/summary").status_code == 401


def test_timeline_counts_by_type_in_intervals(receiver: Receiver) -> None:
    post(receiver.url, [track(n) for n in range(10)])
    post(receiver.url, [{"type": "page", "name": "Home", "anonymousId": "a"}])
    data = httpx.get(receiver.url + "/cmdai/timeline").json()
    assert data["types"] == ["page", "track"]
    assert sum(sum(bar["counts"].values()) for bar in data["bars"]) == 11
    bar = data["bars"][-1]
    within = httpx.get(receiver.url + "/cmdai/page", params={"from": bar["from"], "to": bar["to"]})
    assert within.json()["total"] == sum(bar["counts"].values())
    named = httpx.get(receiver.url + "/cmdai/page?event=Home").json()["rows"]
    assert [r["event"] for r in named] == ["Home"]


def test_listen_prints_the_debugger_and_opens_it(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def open_browser(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", open_browser)
    result = cli("listen", "--port", "0", "--open", "--max-duration", "0.05")
    assert result.exit_code == 0, result.stderr
    assert len(opened) == 1 and opened[0].endswith("/cmdai/ui/")
    assert f"Debugger: {opened[0]}" in result.stderr
    as_json = cli("--json", "listen", "--port", "0", "--max-duration", "0.05")
    first = json.loads(as_json.stdout.splitlines()[0])
    assert first["debugger"] == first["listening"] + "/cmdai/ui/"


def test_every_file_of_the_page_ships_in_the_package() -> None:
    pyproject = tomllib.loads((UI.parents[3] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["cmdai_cli.receiver"]
    files = sorted(path.name for path in UI.iterdir())
    assert files == sorted({name for name, _ in ASSETS.values()})
    for name in files:
        assert any(fnmatch.fnmatch(f"ui/{name}", pattern) for pattern in patterns), name


def test_listen_prints_a_made_up_token_but_never_a_chosen_one(cli: Any) -> None:
    chosen = "chosen-ui-token-0123"
    given = cli("listen", "--port", "0", "--ui-token", chosen, "--max-duration", "0.05")
    assert given.exit_code == 0, given.stderr
    assert chosen not in given.stdout + given.stderr
    assert "Debugger: http://127.0.0.1:" in given.stderr and "?token=..." in given.stderr
    made = cli("listen", "--bind", "0.0.0.0", "--port", "0", "--max-duration", "0.05")
    found = re.search(r"Debugger: (http://\S+/cmdai/ui/\?token=(\S+))", made.stderr)
    assert found is not None and len(found.group(2)) >= 20, made.stderr
