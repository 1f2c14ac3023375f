"""`GET /cmdai/catalogue`: a collector's own catalogue check, as `expect --catalogue` uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from cmdai_cli.expect.check import Looker, check_catalogue
from cmdai_cli.expect.sources import CaptureFile, Collector
from cmdai_cli.plans import Validator, builtin_plan
from cmdai_cli.receiver import ListenOptions, Receiver

MESSAGES: list[dict[str, Any]] = [
    {"type": "track", "event": "Opened", "userId": "u", "properties": {"type": "opened"}},
    {"type": "identify", "userId": "u", "traits": {"userAttributes": "admin"}},
    {
        "type": "track",
        "event": "Opened",
        "userId": "u",
        "properties": {"type": "opened", "trigger": 3},
    },
    {"type": "track", "event": "Closed", "userId": "u", "properties": {"type": "opened"}},
    {"type": "track", "event": "Checkout Started", "userId": "u", "properties": {"total": "x"}},
    {"type": "identify", "userId": "u", "traits": {"plan": 3}},
]


def outcome(source: Any) -> tuple[int, list[tuple[Any, list[str]]]]:
    source.refresh()
    found = check_catalogue(Looker(source), lambda: Validator(builtin_plan()))
    return found.checked, [(item.message, problems) for item, problems in found.broken]


def test_the_collector_answers_as_the_capture_file_is_checked(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    with Receiver(ListenOptions(out=out)) as rx:
        for n, message in enumerate(MESSAGES):
            message = {**message, "messageId": f"m-{n}"}
            assert httpx.post(rx.url + "/v1/batch", json={"batch": [message]}).status_code == 200
        collector = Collector(rx.url, timeout=5)
        served = outcome(collector)
        again = outcome(collector)  # answered from what the collector worked out before
        capture = outcome(CaptureFile(out))
        broken = [message["messageId"] for message, _ in served[1]]
        # Forgotten: the check starts over with what arrives next.
        httpx.post(rx.url + "/cmdai/reset")
        message = {**MESSAGES[3], "messageId": "m-after"}
        httpx.post(rx.url + "/v1/batch", json={"batch": [message]})
        after = outcome(collector)
        collector.close()
    assert served[0] == 4 and broken == ["m-2", "m-3", "m-1"]
    assert [(m["messageId"], p) for m, p in served[1]] == [
        (m["messageId"], p) for m, p in capture[1]
    ]
    assert served == again and capture[0] == served[0]
    assert after[0] == 1 and after[1][0][0]["messageId"] == "m-after"
