"""`cmdai listen` as a real process, driven by segment-analytics-python."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from segment.analytics import Client

from .conftest import WRITE_KEY
from .node_env import NODE_DIR, node_or_skip


class Listener:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cmdai_cli", "listen", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self.stdout: IO[str] = self.proc.stdout
        self.first = self.stdout.readline()
        if not self.first:
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"cmdai listen exited {self.proc.returncode} at start: {err}")

    def line(self) -> str:
        return self.stdout.readline()

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    started: list[Listener] = []
    yield started
    for listener in started:
        if listener.proc.poll() is None:
            listener.proc.kill()
            listener.proc.communicate(timeout=10)


def client(url: str, key: str = WRITE_KEY, **options: Any) -> Client:
    return Client(key, host=url, upload_interval=0.05, max_retries=0, **options)


def test_json_mode_with_the_python_sdk(listeners: list[Listener], tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    listener = Listener("--json", "--write-key", WRITE_KEY, "--out", str(out))
    listeners.append(listener)
    url = json.loads(listener.first)["listening"]
    assert url.startswith("http://127.0.0.1:")
    sdk = client(url, gzip=True)
    sdk.identify("user-1", {"plan": "growth"}, message_id="m-identify")
    sdk.track("user-1", "Opened", {"type": "opened"}, message_id="m-track")
    sdk.page("user-1", "Admin", "Settings", message_id="m-page")
    sdk.flush()
    sdk.join()
    lines = [json.loads(listener.line()) for _ in range(3)]
    assert [entry["message"]["messageId"] for entry in lines] == ["m-identify", "m-track", "m-page"]
    assert lines[1]["message"]["event"] == "Opened"
    assert all(entry["flags"] == [] and entry["path"] == "/v1/batch" for entry in lines)
    code, rest, err = listener.stop()
    assert code == 0, err
    summary = json.loads(rest.strip().splitlines()[-1])["summary"]
    assert summary["accepted"] == 3 and summary["requests"] >= 1
    stored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["messageId"] for m in stored] == ["m-identify", "m-track", "m-page"]
    everything = listener.first + rest + err + out.read_text()
    assert WRITE_KEY not in everything and WRITE_KEY not in json.dumps(lines)


def test_wrong_key_is_accepted_and_flagged(listeners: list[Listener]) -> None:
    # Segment's Tracking API answers 200 to any write key and drops the data later.
    listener = Listener("--json", "--write-key", WRITE_KEY)
    listeners.append(listener)
    url = json.loads(listener.first)["listening"]
    errors: list[int] = []
    sdk = client(url, key="another-key-1234", on_error=lambda e, b: errors.append(e.status))
    sdk.track("u", "Opened", message_id="wrong-key")
    sdk.flush()
    sdk.join()
    entry = json.loads(listener.line())
    assert entry["message"]["messageId"] == "wrong-key" and entry["flags"] == ["wrong write key"]
    code, rest, _ = listener.stop()
    assert code == 0 and errors == []
    summary = json.loads(rest.strip().splitlines()[-1])["summary"]
    assert summary["accepted"] == 1 and summary["flagged"] == 1 and summary["rejected"] == {}


def test_wrong_key_gets_401_with_reject_wrong_key(listeners: list[Listener]) -> None:
    # The contract changed on purpose: a 401 for a wrong key is now asked for by flag.
    listener = Listener("--json", "--write-key", WRITE_KEY, "--reject-wrong-key")
    listeners.append(listener)
    url = json.loads(listener.first)["listening"]
    errors: list[int] = []
    sdk = client(url, key="another-key-1234", on_error=lambda e, b: errors.append(e.status))
    sdk.track("u", "Opened")
    sdk.flush()
    sdk.join()
    code, rest, _ = listener.stop()
    assert code == 0
    assert errors == [401]
    summary = json.loads(rest.strip().splitlines()[-1])["summary"]
    assert summary["accepted"] == 0 and summary["rejected"] == {"401": 1}


def test_table_mode(listeners: list[Listener]) -> None:
    listener = Listener()
    listeners.append(listener)
    assert listener.first.startswith("Listening on http://127.0.0.1:")
    url = listener.first.split()[-1]
    sdk = client(url)
    sdk.track("user-1", "Nudge Shown", message_id="a")
    sdk.group("user-1", "org_1", message_id="b")
    sdk.flush()
    sdk.join()
    header, row1, row2 = listener.line(), listener.line(), listener.line()
    assert header.split()[:2] == ["time", "type"]
    assert "track" in row1 and "Nudge Shown" in row1 and "user-1" in row1
    assert "group org_1" in row2
    code, _, err = listener.stop()
    assert code == 0
    assert "Stopped: " in err and "2 messages accepted" in err


def test_flags_in_the_table(listeners: list[Listener]) -> None:
    import urllib.request

    listener = Listener()
    listeners.append(listener)
    url = listener.first.split()[-1]
    request = urllib.request.Request(
        url + "/v1/track", data=json.dumps({"event": "x"}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    listener.line()
    assert "no userId or anonymousId" in listener.line()
    assert listener.stop()[0] == 0


def test_busy_port_is_a_usage_error(listeners: list[Listener]) -> None:
    first = Listener("--json")
    listeners.append(first)
    port = json.loads(first.first)["listening"].rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "cmdai_cli", "listen", "--port", port],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "cannot listen" in result.stderr


def test_sigterm_also_stops_cleanly(listeners: list[Listener]) -> None:
    listener = Listener("--json")
    listeners.append(listener)
    # The handlers are in place before the "listening" line is printed.
    listener.proc.send_signal(signal.SIGTERM)
    _, err = listener.proc.communicate(timeout=10)
    assert listener.proc.returncode == 0, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_idle_listen_stops_at_once(listeners: list[Listener], sig: int) -> None:
    listener = Listener("--json")
    listeners.append(listener)
    listener.proc.send_signal(sig)
    # Nothing to drain: the wait for the signal is the whole of the stop.
    assert listener.proc.wait(timeout=0.2) == 0


def test_a_second_signal_ends_a_stuck_stop_at_once(listeners: list[Listener]) -> None:
    import http.client
    import socket
    import time

    listener = Listener("--json")
    listeners.append(listener)
    port = int(json.loads(listener.first)["listening"].rsplit(":", 1)[1])
    # Nobody reads listen's output from now on: once the pipe is full, its printing
    # blocks, the work after the answers piles up, and requests are answered 503.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"batch": [{"type": "track", "event": "x" * 5000, "userId": "u"}] * 20})
    deadline = time.monotonic() + 30
    while True:
        conn.request("POST", "/v1/batch", body=body)
        response = conn.getresponse()
        response.read()
        if response.status == 503:
            break
        assert time.monotonic() < deadline, "the printing never blocked"
    conn.close()
    listener.proc.send_signal(signal.SIGINT)
    # The stop has begun once the port is closed; it then waits for the printing.
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            break
        except OSError:
            pass  # reset or unanswered: caught while the port closes
        assert time.monotonic() < deadline, "listen never stopped listening"
    listener.proc.send_signal(signal.SIGINT)
    assert listener.proc.wait(timeout=3) == 130
    assert listener.proc.stderr is not None
    assert "stopped at once" in listener.proc.stderr.read()


def test_serve_stops_on_a_signal_and_puts_the_handlers_back() -> None:
    import urllib.request

    from cmdai_cli.receiver import ListenOptions
    from cmdai_cli.receiver.listen import Listening, run

    before = signal.getsignal(signal.SIGTERM)
    arrived: list[str] = []
    started: list[Listening] = []

    def on_start(listening: Listening) -> None:
        started.append(listening)
        body = json.dumps({"userId": "u", "event": "x"}).encode()
        request = urllib.request.Request(listening.url + "/v1/track", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        os.kill(os.getpid(), signal.SIGTERM)

    result = run(
        ListenOptions(),
        on_batch=lambda batch: arrived.extend(r.message["event"] for r in batch),
        on_start=on_start,
    )
    stats = result.stats
    assert (result.ended_by, result.exit_code, result.problem) == ("signal", 0, None)
    assert result.as_json() == {"summary": stats.as_dict()}
    assert (stats.requests, stats.accepted) == (1, 1)
    assert arrived == ["x"]
    assert started[0].url.startswith("http://127.0.0.1:") and not started[0].unguarded
    assert signal.getsignal(signal.SIGTERM) is before


def test_serve_refuses_a_port_out_of_range() -> None:
    from cmdai_cli.errors import UsageError
    from cmdai_cli.receiver import ListenOptions

    with pytest.raises(UsageError, match="not a port number"):
        ListenOptions(port=70000)


def test_rows_show_type_summary_user_and_flags() -> None:
    from cmdai_cli.commands._received import header_line, row_line
    from cmdai_cli.receiver import Received

    alias = Received(
        {"type": "alias", "previousId": "a1", "userId": "u1"},
        (),
        "2024-05-01T12:34:56.789Z",
        "/v1/alias",
    )
    flagged = Received(
        {"type": "track", "event": "E" * 40},
        ("no userId or anonymousId",),
        "2024-05-01T12:34:57.000Z",
        "/v1/batch",
    )
    assert header_line().split() == ["time", "type", "event", "/", "name", "user", "flags"]
    assert row_line(alias).split() == ["12:34:56.789", "alias", "a1", "->", "u1", "u1"]
    row = row_line(flagged)
    assert "E" * 31 + "…" in row and " - " in row
    assert row.endswith(" no userId or anonymousId")


# ------------------------------------------------------------------ Segment's Node SDK


def run_node_sdk(url: str, key: str) -> list[dict[str, Any]]:
    node = node_or_skip("@segment/analytics-node")
    done = subprocess.run(
        [node, str(NODE_DIR / "send.mjs"), url, key], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_node_sdk_round_trips_every_type() -> None:
    from cmdai_cli.receiver import ListenOptions, Receiver

    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        results = run_node_sdk(rx.url, WRITE_KEY)
        arrived = {r.message["messageId"]: r for r in rx.messages()}
    kinds = ["identify", "track", "page", "screen", "group", "alias"]
    assert sorted(r["messageId"] for r in results if r["ok"]) == sorted(f"node-{k}" for k in kinds)
    for kind in kinds:
        received = arrived[f"node-{kind}"]
        message = received.message
        assert message["type"] == kind and received.flags == ()
        assert message["timestamp"] == "2024-05-01T12:34:56.789Z"
        assert message["integrations"] == {"All": False, "Mixpanel": True}
        assert message["context"]["ip"] == "203.0.113.7"
        assert message["context"]["library"]["name"] == "@segment/analytics-node"
        assert "writeKey" not in message
    assert arrived["node-track"].message["properties"] == {"type": "opened", "trigger": "keyboard"}
    assert arrived["node-group"].message["groupId"] == "org_10234"
    assert arrived["node-alias"].message["previousId"] == "anon-1"


def test_node_sdk_sees_a_wrong_key_refused_when_asked() -> None:
    from cmdai_cli.receiver import ListenOptions, Receiver

    with Receiver(ListenOptions(write_key=WRITE_KEY, reject_wrong_key=True)) as rx:
        results = run_node_sdk(rx.url, "not-the-key-123")
        assert rx.messages() == []
        assert rx.stats.rejected.get(401, 0) >= 1
    assert results and not any(r.get("ok") for r in results)


def test_node_sdk_then_expect_passes_and_fails(cli) -> None:
    from cmdai_cli.receiver import ListenOptions, Receiver

    with Receiver(ListenOptions(write_key=WRITE_KEY)) as rx:
        run_node_sdk(rx.url, WRITE_KEY)
        met = cli("expect", "--from", rx.url, "--event", "opened", "--user-id", "user-1",
                  "--property", "trigger=keyboard", "--no-flagged", "--catalogue")  # fmt: skip
        unmet = cli("--json", "expect", "--from", rx.url, "--type", "group",
                    "--property", "name=Initech")  # fmt: skip
    assert met.exit_code == 0, met.stdout + met.stderr
    assert "PASS  catalogue: 0 of 1 Command AI events break its schema" in met.stdout
    assert unmet.exit_code == 1
    [outcome] = json.loads(unmet.stdout)["expectations"]
    assert outcome["nearest"][0]["differences"] == ['traits.name "Acme" (expected "Initech")']


# ------------------------------------------------------------------ a collector for CI


def wait_for_file(path: Path, proc: subprocess.Popen[str]) -> str:
    """The ready file's text once it appears (the listener must still be running)."""
    import time

    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None, "cmdai listen ended before it was ready"
        assert time.monotonic() < deadline, "no ready file"
        time.sleep(0.01)
    return path.read_text()


def inspect(url: str, path: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url + path, timeout=5) as response:
        return json.loads(response.read())


def test_ready_file_then_exit_after(listeners: list[Listener], tmp_path: Path, cli) -> None:
    ready = tmp_path / "collector.url"
    ready.write_text("http://stale.invalid:1\n")
    listener = Listener("--json", "--ready-file", str(ready), "--exit-after", "3")
    listeners.append(listener)
    url = json.loads(listener.first)["listening"]
    # Written whole, once serving: never the stale one, never part of the URL.
    assert wait_for_file(ready, listener.proc) == url + "\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".collector.url")]
    sdk = client(url)
    sdk.track("user-1", "Opened", {"type": "opened"})
    sdk.track("user-1", "Closed", {"type": "closed"})
    sdk.flush()
    assert cli("expect", "--from", url, "--event", "Opened", "--count", "1").exit_code == 0
    assert inspect(url, "/cmdai/summary")["byEvent"] == {"Closed": 1, "Opened": 1}
    sdk.track("user-2", "Opened", {"type": "opened"})
    sdk.flush()
    sdk.join()
    out, err = listener.proc.communicate(timeout=20)
    assert listener.proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["summary"]["accepted"] == 3
    assert not ready.exists()


def test_max_duration_short_of_exit_after_exits_1(listeners: list[Listener]) -> None:
    listener = Listener("--json", "--exit-after", "5", "--max-duration", "0.3")
    listeners.append(listener)
    out, err = listener.proc.communicate(timeout=20)
    assert listener.proc.returncode == 1
    assert json.loads(out.strip().splitlines()[-1])["summary"]["accepted"] == 0
    assert "--max-duration 0.3s passed with 0 of the 5 messages --exit-after waits for" in err
    alone = Listener("--max-duration", "0.3")
    listeners.append(alone)
    _, err = alone.proc.communicate(timeout=20)
    assert alone.proc.returncode == 0, err


def test_keep_bounds_what_listen_holds(listeners: list[Listener], tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    listener = Listener("--json", "--keep", "2", "--out", str(out))
    listeners.append(listener)
    url = json.loads(listener.first)["listening"]
    sdk = client(url)
    for n in range(5):
        sdk.track("user-1", "Opened", message_id=f"m-{n}")
    sdk.flush()
    sdk.join()
    summary = inspect(url, "/cmdai/summary")
    assert (summary["received"], summary["kept"], summary["droppedByKeep"]) == (5, 2, 3)
    kept = inspect(url, "/cmdai/messages")
    assert [entry["message"]["messageId"] for entry in kept] == ["m-3", "m-4"]
    assert listener.stop()[0] == 0
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--keep", "-1"), "--keep"),
        (("--exit-after", "0"), "--exit-after"),
        (("--max-duration", "0"), "--max-duration"),
    ],
)
def test_listen_refuses_bad_bounds(args: tuple[str, ...], problem: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cmdai_cli", "listen", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2 and problem in done.stderr


def test_reject_wrong_key_needs_a_write_key(cli: Any) -> None:
    result = cli("listen", "--reject-wrong-key", "--port", "0")
    assert result.exit_code == 2
    assert "--reject-wrong-key needs --write-key" in result.stderr


@pytest.mark.parametrize(
    ("requests", "accepted", "rejected", "text"),
    [
        (1, 1, {}, "Stopped: 1 request; 1 message accepted (0 flagged); 0 requests rejected"),
        (
            3,
            2,
            {400: 1},
            "Stopped: 3 requests; 2 messages accepted (0 flagged); 1 request rejected (400: 1)",
        ),
        (0, 0, {}, "Stopped: 0 requests; 0 messages accepted (0 flagged); 0 requests rejected"),
    ],
)
def test_the_summary_counts_in_words(
    requests: int, accepted: int, rejected: dict[int, int], text: str
) -> None:
    from cmdai_cli.commands.listen import summary_text
    from cmdai_cli.receiver import Stats

    stats = Stats(requests=requests, accepted=accepted, rejected=rejected)
    assert summary_text(stats) == text


def test_lone_surrogates_are_kept_and_what_javascript_refuses_is_400(
    listeners: list[Listener], tmp_path: Path
) -> None:
    import httpx

    out = tmp_path / "events.ndjson"
    listener = Listener("--json", "--out", str(out))
    listeners.append(listener)
    url = json.loads(listener.first)["listening"]
    # What analytics.js sends for a cut emoji: a lone surrogate escape, as text/plain.
    body = b'{"userId":"u","event":"cut \\ud83d","properties":{"k\\udc00":"\\uDFFF\\uD800"}}'
    answer = httpx.post(url + "/v1/t", content=body, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text
    # Not JSON to JavaScript either: still refused.
    refused = httpx.post(url + "/v1/t", content=b'{"userId":"u","event":"x",}')
    assert refused.status_code == 400
    entry = listener.line()
    kept = b'"event":"cut \\ud83d","properties":{"k\\udc00":"\\udfff\\ud800"}'
    assert kept.decode() in entry
    messages = httpx.get(url + "/cmdai/messages").content
    assert kept in messages
    code, _, err = listener.stop()
    assert code == 0, err
    assert kept in out.read_bytes()
