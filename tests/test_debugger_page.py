"""The Source Debugger page in headless Chromium, against a real `cmdai listen --plan`.

Messages go in through the Python SDK; the page is read and clicked through the Chrome
DevTools Protocol (`tests/cdp.py`). One listen and one browser serve the module. A
screenshot of each view is written to `$CMDAI_SCREENSHOTS` (default: a temporary
directory), for people to look at.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics import Client

from cmdai_cli import catalogue
from cmdai_cli.plans import builtin_plan, save_plan

from .cdp import Browser, find_browser
from .conftest import WRITE_KEY
from .listen_process import ListenProcess
from .node_env import missing


class Listen:
    def __init__(self, url: str, debugger: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.debugger = debugger
        self.process = process
        self.client = Client(WRITE_KEY, host=url, sync_mode=True, max_retries=0)

    def track(self, event: str, user: str, properties: dict[str, Any]) -> str:
        message_id = "m-" + uuid.uuid4().hex
        self.client.track(user_id=user, event=event, properties=properties, message_id=message_id)
        return message_id

    def identify(self, user: str, traits: dict[str, Any], context: dict[str, Any]) -> str:
        message_id = "m-" + uuid.uuid4().hex
        self.client.identify(user_id=user, traits=traits, context=context, message_id=message_id)
        return message_id


@pytest.fixture(scope="module")
def listen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listen]:
    plan = tmp_path_factory.mktemp("plan") / "plan.json"
    save_plan(builtin_plan(), plan)
    started = ListenProcess("--plan", str(plan))
    if not started.url:
        pytest.fail(f"cmdai listen did not start: {started.err}")
    process = started.proc
    assert process.stdout is not None
    # Nothing reads what listen prints after its first line: send it where it can pile up.
    process.stdout.close()
    try:
        yield Listen(started.url, started.debugger, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = find_browser()
    if executable is None:
        missing("no Chromium found (install Debian's `chromium` package)")
    started = Browser.start(executable, tmp_path_factory.mktemp("chromium"))
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("CMDAI_SCREENSHOTS")
    return Path(where) if where else tmp_path_factory.mktemp("screenshots")


def row(message_id: str) -> str:
    return f"document.querySelector('#rows tr[data-message-id=\"{message_id}\"]')"


def ids_shown(browser: Browser) -> list[str]:
    return browser.evaluate(
        "Array.from(document.querySelectorAll('#rows tr')).map(r => r.dataset.messageId)"
    )


def nudge(listen: Listen, user: str = "u-1", **extra: Any) -> str:
    spec = catalogue.lookup("nudge_shown")
    assert spec is not None
    properties = catalogue.build_message(spec, user_id=user)["properties"]
    return listen.track("Nudge Shown", user, {**properties, **extra})


def test_the_url_listen_prints_serves_the_page(listen: Listen, browser: Browser) -> None:
    assert listen.debugger == listen.url + "/cmdai/ui/"
    browser.goto(listen.url + "/")  # a browser's GET / is sent to the page
    assert browser.evaluate("location.pathname") == "/cmdai/ui/"
    assert browser.evaluate("document.title").startswith("cmdai listen")


def test_messages_appear_live_and_pause_holds_them(listen: Listen, browser: Browser) -> None:
    browser.goto(listen.debugger)
    first = nudge(listen, "live-user")
    browser.wait_for("!!" + row(first))
    assert ids_shown(browser)[0] == first  # newest first
    browser.evaluate("document.getElementById('live').click()")
    assert browser.evaluate("document.getElementById('live').textContent") == "Paused"
    held = nudge(listen, "live-user")
    browser.wait_for("document.getElementById('counts').textContent.includes('1 new while paused')")
    assert browser.evaluate(row(held)) is None
    browser.evaluate("document.getElementById('live').click()")
    browser.wait_for("!!" + row(held))
    assert ids_shown(browser)[:2] == [held, first]


def test_the_list_keeps_up_with_thousands_of_messages_a_second(
    listen: Listen, browser: Browser
) -> None:
    browser.goto(listen.debugger)
    before = browser.evaluate("fetch('/cmdai/summary').then(r => r.json()).then(s => s.received)")
    sent = 0
    started = time.monotonic()
    with httpx.Client(base_url=listen.url) as client:
        while sent < 10_000:
            batch = [
                {"type": "track", "event": "Burst", "userId": "burst", "messageId": f"b-{n}"}
                for n in range(sent, sent + 500)
            ]
            assert client.post("/v1/batch", json={"batch": batch}).status_code == 200
            sent += len(batch)
    print(f"sent {sent} messages at {sent / (time.monotonic() - started):.0f} a second")
    browser.wait_for("!!" + row(f"b-{sent - 1}"))
    total = before + sent
    counts = "document.getElementById('counts').textContent"
    browser.wait_for(f"{counts}.startsWith('{total} received')")
    shown = ids_shown(browser)
    assert len(shown) == 100 and shown[:3] == [f"b-{sent - n}" for n in (1, 2, 3)]


def set_filter(browser: Browser, name: str, value: str) -> None:
    kind = "change" if name in ("type", "flag", "violation") else "input"
    if kind == "change":
        # The choices come from what arrived: wait for this one.
        browser.wait_for(
            f"Array.from(document.getElementById({json.dumps(name)}).options)"
            f".some(o => o.value === {json.dumps(value)})"
        )
    browser.evaluate(
        f"(() => {{ const e = document.getElementById({json.dumps(name)});"
        f"e.value = {json.dumps(value)}; e.dispatchEvent(new Event({json.dumps(kind)})); }})()"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("q", "needle-{token}"),
        ("type", "identify"),
        ("event", "Custom {token}"),
        ("user", "filter-user-{token}"),
        ("flag", "any"),
        ("violation", "plan: unplanned event at /event"),
    ],
)
def test_each_filter_narrows_the_list_and_survives_a_reload(
    listen: Listen, browser: Browser, name: str, value: str
) -> None:
    token = uuid.uuid4().hex[:8]
    value = value.format(token=token)
    browser.goto(listen.debugger)
    # One message each filter lets through, one it keeps out.
    if name == "q":
        wanted = nudge(listen, "u-2", note=f"needle-{token}")
    elif name == "type":
        wanted = listen.identify(f"who-{token}", {"plan": "growth"}, {})
    elif name == "event":
        wanted = listen.track(f"Custom {token}", "u-3", {})
    elif name == "user":
        wanted = nudge(listen, f"filter-user-{token}")
    elif name == "flag":
        # An event the tracking plan does not have is flagged.
        wanted = listen.track(f"Custom {token}", "u-4", {})
    else:
        wanted = listen.track(f"Custom {token}", "u-5", {})
    other = nudge(listen, "u-other")
    browser.wait_for("!!" + row(other))
    set_filter(browser, name, value)
    browser.wait_for(
        f"new URLSearchParams(location.search).get({json.dumps(name)}) === {json.dumps(value)}"
    )
    browser.wait_for(f"{row(wanted)} && !{row(other)}")
    shown = browser.evaluate(
        "fetch('/cmdai/page?' + new URLSearchParams(location.search)).then(r => r.json())"
    )
    assert wanted in [r["id"] for r in shown["rows"]]
    assert other not in [r["id"] for r in shown["rows"]]
    browser.goto(browser.evaluate("location.href"))
    assert browser.evaluate(f"document.getElementById({json.dumps(name)}).value") == value
    assert browser.evaluate(row(wanted)) is not None
    assert browser.evaluate(row(other)) is None


def test_pretty_and_raw_views_show_the_message(
    listen: Listen, browser: Browser, shots: Path
) -> None:
    message_id = nudge(listen, "view-user")
    browser.goto(listen.debugger)
    browser.wait_for("!!" + row(message_id))
    browser.screenshot(shots / "list.png")
    browser.evaluate(f"{row(message_id)}.click()")
    browser.wait_for(f"document.getElementById('detail').dataset.messageId === '{message_id}'")
    pretty = browser.evaluate("document.getElementById('detail-body').textContent")
    assert 'analytics.track("Nudge Shown", {' in pretty
    assert '"type": "nudge_shown"' in pretty
    browser.screenshot(shots / "pretty.png")
    browser.evaluate("document.getElementById('tab-raw').click()")
    raw = json.loads(browser.evaluate("document.getElementById('detail-body').textContent"))
    assert raw["messageId"] == message_id and raw["event"] == "Nudge Shown"
    assert raw["userId"] == "view-user" and raw["properties"]["type"] == "nudge_shown"
    assert "tab=raw" in browser.evaluate("location.search")
    browser.screenshot(shots / "raw.png")
    browser.evaluate("document.getElementById('copy').click()")
    copied = browser.wait_for("navigator.clipboard.readText().catch(() => '')")
    assert json.loads(copied)["messageId"] == message_id


def test_the_command_ai_panel_matches_map_payload(
    listen: Listen, browser: Browser, cli: Any, tmp_path: Path, shots: Path
) -> None:
    message_id = listen.identify(
        "panel-user", {"plan": "growth", "seats": 4}, {"CommandBar": {"hmac": "abc123"}}
    )
    browser.goto(listen.debugger)
    browser.wait_for("!!" + row(message_id))
    browser.evaluate(f"{row(message_id)}.click()")
    browser.wait_for("!!document.querySelector('[data-record=\"destination-true\"]')")
    seq = browser.evaluate("new URLSearchParams(location.search).get('seq')")
    message = browser.evaluate(
        f"fetch('/cmdai/message?seq={seq}').then(r => r.json()).then(d => d.message)"
    )
    events = tmp_path / "event.ndjson"
    events.write_text(json.dumps(message) + "\n")
    for key, args in (
        ("webhook", ["--target", "webhook"]),
        ("destination-false", ["--target", "destination", "--no-deploy"]),
        ("destination-true", ["--target", "destination", "--deploy"]),
    ):
        result = cli("map-payload", str(events), *args, "--format", "ndjson")
        assert result.exit_code == 0, result.stderr
        expected = json.loads(result.stdout.splitlines()[0])
        expected.pop("index", None)
        shown = browser.evaluate(f"document.querySelector('[data-record=\"{key}\"]').textContent")
        assert json.loads(shown) == expected, key
    panel = browser.evaluate("document.getElementById('commandai').textContent")
    assert 'window.CommandBar.boot("panel-user"' in panel
    assert "window.CommandBar.addMetadataBatch(" in panel
    browser.screenshot(shots / "command-ai.png")


HOSTILE = {
    "img": '<img src=x onerror="window.__pwned = 1">',
    "script": "</script><script>window.__pwned = 2</script>",
    "svg": '<svg onload="window.__pwned = 3"></svg>',
}


def test_a_hostile_message_stays_inert(listen: Listen, browser: Browser) -> None:
    message_id = listen.track('<img src=x onerror="window.__pwned = 4">', HOSTILE["svg"], HOSTILE)
    browser.goto(listen.debugger)
    browser.wait_for("!!" + row(message_id))
    browser.evaluate(f"{row(message_id)}.click()")
    browser.wait_for(f"document.getElementById('detail').dataset.messageId === '{message_id}'")
    browser.evaluate("document.getElementById('tab-pretty').click()")
    browser.evaluate(
        "document.querySelector('#schema-view') && document.getElementById('view-schema').click()"
    )
    browser.wait_for("document.getElementById('schema-rows').rows.length > 0")
    browser.evaluate("document.getElementById('view-messages').click()")
    # Nothing the message carries became markup, and nothing it carries ran.
    assert browser.evaluate("window.__pwned") is None
    assert (
        browser.evaluate(
            "document.querySelectorAll('img, script:not([src]), [onload], [onerror]').length"
        )
        == 0
    )
    assert browser.evaluate(f"{row(message_id)}.textContent").count("<img src=x") == 1
    assert HOSTILE["script"] in browser.evaluate(
        "document.getElementById('detail-body').textContent"
    )


def test_the_timeline_filters_to_a_clicked_interval(
    listen: Listen, browser: Browser, shots: Path
) -> None:
    message_id = nudge(listen, "timeline-user")
    browser.goto(listen.debugger)
    browser.wait_for("!!" + row(message_id))
    browser.wait_for("document.querySelectorAll('#timeline g').length > 0")
    bar = browser.evaluate(
        "(() => { const g = Array.from(document.querySelectorAll('#timeline g')).pop();"
        "g.dispatchEvent(new MouseEvent('click', {bubbles: true}));"
        "return {from: g.dataset.from, to: g.dataset.to}; })()"
    )
    browser.wait_for(f"new URLSearchParams(location.search).get('to') === '{bar['to']}'")
    browser.wait_for("!!" + row(message_id))
    times = browser.evaluate(
        "fetch('/cmdai/page?' + new URLSearchParams(location.search)).then(r => r.json())"
        ".then(p => p.rows.map(r => r.receivedAt))"
    )
    assert times and all(bar["from"] <= t < bar["to"] for t in times)
    assert browser.evaluate("document.getElementById('range').hidden") is False
    browser.screenshot(shots / "timeline.png")


def test_the_schema_view_shows_events_properties_and_the_plan(
    listen: Listen, browser: Browser, shots: Path
) -> None:
    token = uuid.uuid4().hex[:8]
    nudge(listen, "schema-user")
    listen.track(f"Unplanned {token}", "schema-user", {"count": 3})
    browser.goto(listen.debugger + "?view=schema")
    browser.wait_for(
        f"!!document.querySelector('#schema-rows tr[data-event=\"Unplanned {token}\"]')"
    )
    cells = browser.evaluate(
        f"Array.from(document.querySelector('#schema-rows tr[data-event=\"Unplanned {token}\"]')"
        ".cells).map(c => c.textContent)"
    )
    assert cells[1:3] == ["track", "1"] and cells[5] == "not planned" and cells[6] == "1"
    planned = browser.evaluate(
        "Array.from(document.querySelector('#schema-rows tr[data-event=\"Nudge Shown\"]')"
        ".cells).map(c => c.textContent)"
    )
    assert planned[5] == "planned" and planned[6] == "0"
    prop = browser.evaluate(
        f"(() => {{ let r = document.querySelector("
        f"'#schema-rows tr[data-event=\"Unplanned {token}\"]')"
        ".nextElementSibling; return Array.from(r.cells).map(c => c.textContent); })()"
    )
    assert prop[0] == "count" and prop[2] == "1" and prop[3] == "integer"
    browser.screenshot(shots / "schema.png")
