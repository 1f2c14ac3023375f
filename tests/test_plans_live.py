"""A tracking plan checked live: `listen --plan` flags violations, `expect --plan` asserts none."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client

from cmdai_cli.plans import Validator, load_plan, plan_flags
from cmdai_cli.receiver import ListenOptions, Receiver
from tests.test_listen import Listener
from tests.test_plans import track_rule

OPENED = track_rule(
    "Opened",
    {"required": ["trigger"], "properties": {"trigger": {"type": "string"}}},
)


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"name": "Bar", "rules": [OPENED]}))
    return path


def send(url: str, *calls: tuple[str, dict[str, Any]]) -> None:
    client = Client("wk_plans_live_0123456789", host=url, upload_size=10)
    for event, properties in calls:
        client.track("user-1", event, properties)
    client.flush()
    client.join()


def good_and_bad(url: str) -> None:
    send(
        url,
        ("Opened", {"trigger": "keyboard"}),
        ("Opened", {"trigger": 3}),
        ("Opened", {}),
        ("Closed", {}),
    )


def test_plan_flags_name_the_violation_kind_and_pointer(plan_file: Path) -> None:
    flags = plan_flags(Validator(load_plan(plan_file)))
    ok = {"type": "track", "event": "Opened", "properties": {"trigger": "keyboard"}}
    assert flags(ok) == ()
    assert flags({**ok, "properties": {"trigger": 3}}) == (
        "plan: datatype mismatch at /properties/trigger",
    )
    assert flags({**ok, "event": "Closed"}) == ("plan: unplanned event at /event",)


@pytest.fixture
def listener(plan_file: Path) -> Iterator[Listener]:
    running = Listener("--json", "--plan", str(plan_file))
    yield running
    if running.proc.poll() is None:
        running.stop()


def test_listen_plan_flags_what_breaks_the_plan_as_it_arrives(listener: Listener) -> None:
    url = json.loads(listener.first)["listening"]
    good_and_bad(url)
    lines = [json.loads(listener.line()) for _ in range(4)]
    flags = {
        json.dumps(line["message"]["properties"], sort_keys=True) + line["message"]["event"]: [
            f for f in line["flags"] if f.startswith("plan:")
        ]
        for line in lines
    }
    assert flags == {
        '{"trigger": "keyboard"}Opened': [],
        '{"trigger": 3}Opened': ["plan: datatype mismatch at /properties/trigger"],
        "{}Opened": ["plan: required property missing at /properties/trigger"],
        "{}Closed": ["plan: unplanned event at /event"],
    }
    with urllib.request.urlopen(url + "/cmdai/summary", timeout=5) as answer:
        summary = json.loads(answer.read())
    assert summary["flagged"] == 3
    assert summary["byFlag"]["plan: unplanned event at /event"] == 1


def test_listen_refuses_a_bad_plan_file_before_it_serves(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [{"type": "TRACK", "key": "X", "jsonSchema": {"type": 5}}]}')
    result = cli("listen", "--port", "0", "--plan", str(bad))
    assert result.exit_code == 3
    assert str(bad) in result.stderr


def test_expect_plan_passes_when_nothing_breaks_it_and_fails_naming_what_does(
    cli: Any, plan_file: Path
) -> None:
    with Receiver() as rx:
        send(rx.url, ("Opened", {"trigger": "keyboard"}))
        assert cli("expect", "--from", rx.url, "--plan", str(plan_file)).exit_code == 0
        good_and_bad(rx.url)
        text = cli("expect", "--from", rx.url, "--plan", str(plan_file))
        data = cli("--json", "expect", "--from", rx.url, "--plan", str(plan_file))
    assert text.exit_code == 1
    assert "FAIL  plan: 3 of 5 messages break it" in text.stdout
    assert "plan: required property missing at /properties/trigger" in text.stdout
    report = json.loads(data.stdout)
    assert report["plan"]["met"] is False and report["plan"]["broken"] == 3
    assert data.exit_code == 1


def test_expect_plan_reads_a_capture_file_too(cli: Any, plan_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "capture.ndjson"
    with Receiver(ListenOptions(out=out)) as rx:
        send(rx.url, ("Opened", {"trigger": "keyboard"}), ("Opened", {"trigger": []}))
        rx.wait_for(2, timeout=10)
    result = cli("expect", "--from", str(out), "--plan", str(plan_file))
    assert result.exit_code == 1
    assert "1 of 2 messages break it" in result.stdout
