"""analytics.js in a real browser against `cmdai listen`.

A page on one origin loads `@segment/analytics-next`'s standalone bundle (from npm, in
tests/node) with its CDN (`_cdn`, the snippet's cdnURL) and `Segment.io`'s `apiHost`
set to a `cmdai listen` on another origin, so the browser does what it does on a real
site: it loads the source's settings from the CDN, sends CORS preflights and posts
`text/plain` bodies to the short paths. Headless Chromium drives it; without a browser
the test skips and says why.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import WRITE_KEY
from .node_env import NODE_DIR, missing

BUNDLE = NODE_DIR / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# How long to wait for the page's three calls to arrive; a deadline, not a pause.
ARRIVAL_DEADLINE = 60.0

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cmdai listen</title>
<script>
  // The Segment snippet's buffer, as a page has it before the bundle loads.
  var analytics = (window.analytics = []);
  analytics._writeKey = %(key)s;
  analytics._cdn = %(cdn)s;
  analytics._loadOptions = %(options)s;
  ["identify", "track", "page"].forEach(function (method) {
    analytics[method] = function () {
      var args = Array.prototype.slice.call(arguments);
      args.unshift(method);
      analytics.push(args);
      return analytics;
    };
  });
  analytics.identify("browser-user", {plan: "growth"});
  analytics.track("Opened", {trigger: "keyboard"});
  analytics.page("Admin", "Settings");
</script>
<script src="/standalone.js"></script>
</head><body>cmdai listen browser test</body></html>
"""


def find_browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    missing("no Chromium found (install Debian's `chromium` package)")


class PageServer(http.server.ThreadingHTTPServer):
    """Serves the test page and the bundle: the site's own origin."""

    daemon_threads = True

    def __init__(self, page: bytes) -> None:
        self.page = page
        super().__init__(("127.0.0.1", 0), PageHandler)


class PageHandler(http.server.BaseHTTPRequestHandler):
    server: PageServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            body, kind = self.server.page, "text/html"
        elif path == "/standalone.js":
            body, kind = (BUNDLE / "standalone.js").read_bytes(), "application/javascript"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def listener() -> Iterator[tuple[str, queue.Queue[dict[str, Any]]]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cmdai_cli",
            "listen",
            "--json",
            "--port",
            "0",
            *("--write-key", WRITE_KEY),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first:
        pytest.fail(f"cmdai listen did not start: {proc.communicate(timeout=10)[1]}")
    lines: queue.Queue[dict[str, Any]] = queue.Queue()

    def read(stdout: Any) -> None:
        for line in stdout:
            lines.put(json.loads(line))

    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        yield json.loads(first)["listening"], lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)


@pytest.mark.parametrize("api_host_from", ["load options", "settings document"])
def test_analytics_js_in_chromium_reaches_listen(
    listener: tuple[str, queue.Queue[dict[str, Any]]], tmp_path: Path, api_host_from: str
) -> None:
    browser = find_browser()
    if not (BUNDLE / "standalone.js").is_file():
        missing("@segment/analytics-next is not installed: run `npm ci --prefix tests/node`")
    url, lines = listener
    host = url.split("://", 1)[1]
    options: dict[str, Any] = {}
    if api_host_from == "load options":
        # As a page sets it: `integrations["Segment.io"].apiHost` and its protocol.
        options["integrations"] = {"Segment.io": {"apiHost": host + "/v1", "protocol": "http"}}
    page = PAGE % {
        "key": json.dumps(WRITE_KEY),
        "cdn": json.dumps(url),
        "options": json.dumps(options),
    }
    site = PageServer(page.encode())
    threading.Thread(target=site.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    chromium = subprocess.Popen(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"http://127.0.0.1:{site.server_address[1]}/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    arrived: dict[str, dict[str, Any]] = {}
    try:
        while len(arrived) < 3:
            try:
                entry = lines.get(timeout=ARRIVAL_DEADLINE)
            except queue.Empty:
                break
            if "message" in entry:
                arrived[entry["message"]["type"]] = entry
    finally:
        chromium.terminate()
        try:
            _, err = chromium.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            chromium.kill()
            _, err = chromium.communicate(timeout=20)
        site.shutdown()
        site.server_close()
    assert sorted(arrived) == ["identify", "page", "track"], err.decode(errors="replace")[-2000:]
    identify, track, page_view = arrived["identify"], arrived["track"], arrived["page"]
    assert identify["path"] == "/v1/i" and identify["message"]["userId"] == "browser-user"
    assert identify["message"]["traits"] == {"plan": "growth"}
    assert track["path"] == "/v1/t" and track["message"]["event"] == "Opened"
    assert track["message"]["properties"] == {"trigger": "keyboard"}
    assert page_view["path"] == "/v1/p" and page_view["message"]["name"] == "Settings"
    for entry in arrived.values():
        assert entry["flags"] == [], entry
        assert entry["message"]["context"]["library"]["name"] == "analytics.js"
        assert "writeKey" not in entry["message"]
