"""`cmdai status` against the Public API stand-in: every verdict, exit code and picture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdai_cli import output, public_api
from cmdai_cli.commands import status as status_command
from cmdai_cli.errors import UsageError
from cmdai_cli.retry import RetryPolicy
from cmdai_cli.workspace import readings
from cmdai_cli.workspace import status as core
from cmdai_cli.workspace.window import parse_duration, window_for
from tests.conftest import TOKEN, WRITE_KEY
from tests.fake_public_api import COMMANDAI, WEBHOOKS, FakePublicApi, running

ORG = "org-1"
HOOK = "https://api.command.ai/hooks/o1"
NOW = datetime(2026, 12, 6, 12, 0, 30, tzinfo=timezone.utc)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePublicApi]:
    monkeypatch.setattr(
        public_api,
        "DEFAULT_POLICY",
        RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01, max_total_wait=1.0),
    )
    with running(TOKEN) as fake:
        monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
        monkeypatch.setenv("CMDAI_API_HOST", fake.url)
        monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
        monkeypatch.setenv("CMDAI_ORG_ID", ORG)
        monkeypatch.setenv("CMDAI_WEBHOOK_URL", HOOK)
        yield fake


@pytest.fixture
def source(api: FakePublicApi) -> dict[str, Any]:
    return api.seed_status(write_key=WRITE_KEY, org_id=ORG, webhook_url=HOOK)


def run_json(cli: Any, *args: str) -> tuple[Any, dict[str, Any]]:
    result = cli("status", "--json", *args)
    return result, json.loads(result.stdout)


def check(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["checks"] if c["name"] == name)


def of_kind(api: FakePublicApi, kind: str) -> dict[str, Any]:
    return next(d for d in api.destinations.values() if d["metadataId"] == kind)


# ---------------------------------------------------------------------- verdicts


def test_healthy(cli, api: FakePublicApi, source: dict[str, Any]) -> None:
    result, data = run_json(cli)
    assert result.exit_code == 0, result.stderr
    assert data["healthy"] is True
    assert data["source"] == {"id": source["id"], "slug": "command-ai", "name": "Command AI"}
    assert data["window"]["granularity"] == "hour"
    assert {c["status"] for c in data["checks"]} == {"pass"}
    expected = sum(sum(counts) for counts in api.volume[source["id"]].values())
    assert data["volume"]["total"] == expected
    assert "User Changed Shortcut" in data["volume"]["missing"]
    assert data["volume"]["unknown"] == []
    kinds = {d["kind"]: d for d in data["destinations"]}
    assert kinds["commandai"]["enabled"] and kinds["commandai"]["problems"] == []
    assert kinds["webhook"]["problems"] == []
    delivery = data["delivery"]
    assert list(delivery["steps"]) == list(readings.STEPS)
    assert delivery["steps"]["successfully-received"] == expected
    assert delivery["failures"] == {"http.504": 1}
    assert delivery["retried"] == 2
    assert data["filters"] == []
    # Delivery Overview was asked with its Beta media type (the stand-in refuses others).
    beta = [r for r in api.requests if r.path.startswith("/delivery-overview/")]
    assert len(beta) == 6
    assert {r.headers["accept"] for r in beta} == {public_api.BETA_MEDIA_TYPE}
    volume = [r for r in api.requests if r.path == "/events/volume"]
    assert volume[0].query["granularity"] == ["HOUR"]
    assert volume[0].query["groupBy"] == ["eventName", "eventType"]
    assert volume[0].query["sourceId"] == [source["id"]]


def test_the_picture_fits_80_columns_in_ascii(cli, api, source, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = cli("status")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(ord(ch) < 128 for ch in result.stdout)
    assert "\x1b[" not in result.stdout
    assert "HEALTHY" in result.stdout
    assert "device mode" in result.stdout and "cmdai listen" in result.stdout
    assert any(line.startswith("Nudge Clicked") and "#" in line for line in lines)


def test_unknown_names_are_listed(cli, api, source) -> None:
    api.volume[source["id"]][("Nuge Shown", "track")] = [1]
    _, data = run_json(cli)
    assert data["volume"]["unknown"] == ["Nuge Shown"]


def test_a_silent_source_fails(cli, api: FakePublicApi, source) -> None:
    api.volume[source["id"]] = {}
    result, data = run_json(cli)
    assert result.exit_code == 1
    assert check(data, "events")["status"] == "fail"
    assert data["healthy"] is False
    assert "events: no event reached the source" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("change", ["missing", "disabled", "orgId"])
def test_the_command_ai_destination_missing_disabled_or_another_org(
    cli, api: FakePublicApi, source, change: str
) -> None:
    dest = of_kind(api, COMMANDAI)
    if change == "missing":
        del api.destinations[dest["id"]]
    elif change == "disabled":
        dest["enabled"] = False
    else:
        dest["settings"]["orgId"] = "someone-else"
    result, data = run_json(cli)
    assert result.exit_code == 1
    found = check(data, "command ai destination")
    assert found["status"] == "fail"
    assert {"missing": "missing", "disabled": "disabled", "orgId": "someone-else"}[change] in (
        found["detail"]
    )


def test_the_webhook_destination_missing_or_posting_elsewhere(cli, api, source) -> None:
    hook = of_kind(api, WEBHOOKS)
    next(iter(api.subscriptions.values()))["settings"]["url"] = "https://elsewhere.example"
    result, data = run_json(cli)
    assert result.exit_code == 1
    assert "not the profile's webhook URL" in check(data, "webhook destination")["detail"]
    del api.destinations[hook["id"]]
    result, data = run_json(cli)
    assert result.exit_code == 1
    assert check(data, "webhook destination")["status"] == "fail"
    assert data["delivery"] is None
    assert check(data, "delivery")["status"] == "skip"


def test_no_webhook_url_and_no_webhook_destination_is_a_skip(cli, api, source, monkeypatch):
    monkeypatch.delenv("CMDAI_WEBHOOK_URL")
    del api.destinations[of_kind(api, WEBHOOKS)["id"]]
    result, data = run_json(cli)
    assert result.exit_code == 0, result.stderr
    assert check(data, "webhook destination")["status"] == "skip"


def test_failing_delivery_over_the_allowed_rate(cli, api: FakePublicApi, source) -> None:
    hook = of_kind(api, WEBHOOKS)
    api.delivery[(source["id"], hook["id"], "failed-delivery")] = [
        {"discardReason": "http.500", "total": 30},
        {"discardReason": "timeout", "total": 10},
    ]
    result, data = run_json(cli)
    assert result.exit_code == 1
    assert check(data, "delivery")["status"] == "fail"
    assert data["delivery"]["failures"] == {"http.500": 30, "timeout": 10}
    result, data = run_json(cli, "--max-failure-rate", "0.9")
    assert result.exit_code == 0, result.stderr
    assert check(data, "delivery")["status"] == "pass"


def test_a_filter_that_drops_identify(cli, api: FakePublicApi, source) -> None:
    dest = of_kind(api, COMMANDAI)
    api.add_filter(dest, "no tracks", 'type = "track"')
    api.add_filter(dest, "no identify", 'type = "identify"')
    api.add_filter(dest, "off", 'type = "identify"', enabled=False)
    result, data = run_json(cli)
    assert result.exit_code == 1
    drops = {f["title"]: f["dropsIdentify"] for f in data["filters"]}
    assert drops == {"no tracks": False, "no identify": True, "off": False}
    assert "'no identify'" in check(data, "filters")["detail"]
    previews = [r for r in api.requests if r.path == "/destination/filters/preview"]
    assert len(previews) == 2
    assert previews[0].body["payload"]["type"] == "identify"
    assert previews[0].body["filter"] == {"if": 'type = "track"', "actions": [{"type": "DROP"}]}


# ---------------------------------------------------------------------- Segment's answers


def test_403_is_one_line_about_the_plan(cli, api: FakePublicApi, source) -> None:
    api.fail("GET", "/sources", 403, body={"errors": [{"type": "forbidden", "message": "no"}]})
    result = cli("status")
    assert result.exit_code == 5
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Team or Business plan" in result.stderr


@pytest.mark.parametrize(
    "headers, body",
    [
        ({"Retry-After": "0"}, None),
        ({"X-RateLimit-Reset": "0"}, None),
        ({}, {"errors": [{"type": "too-many-requests", "data": {"msBeforeNext": 1}}]}),
    ],
    ids=["retry-after", "ratelimit-reset", "body-msBeforeNext"],
)
def test_429_is_waited_out_then_succeeds(cli, api, source, headers, body) -> None:
    api.fail("GET", "/events/volume", 429, headers=headers, body=body)
    result = cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    assert "rate limited" in result.stderr
    assert len([r for r in api.requests if r.path == "/events/volume"]) == 2


def test_msbeforenext_in_errors_sets_the_wait() -> None:
    import httpx

    response = httpx.Response(
        429, json={"errors": [{"type": "x", "data": {"msBeforeNext": 2500}}, {"type": "y"}]}
    )
    assert public_api.server_wait(response, now=0.0) == 2.5


class ToStandIn(httpx.HTTPTransport):
    """Sends every request to the stand-in, leaving its Host header as the client set it."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.target = httpx.URL(url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self.target.scheme, host=self.target.host, port=self.target.port
        )
        return super().handle_request(request)


def test_eu_workspaces_use_the_eu_host(cli, api: FakePublicApi, source, monkeypatch) -> None:
    real = httpx.Client

    def client(*args: Any, **kwargs: Any) -> httpx.Client:
        return real(*args, **{**kwargs, "transport": ToStandIn(api.url)})

    monkeypatch.setattr(httpx, "Client", client)
    monkeypatch.delenv("CMDAI_API_HOST")
    result = cli("status", "--region", "eu", "--json")
    assert result.exit_code == 0, result.stderr
    assert {r.headers["host"] for r in api.requests} == {"eu1.api.segmentapis.com"}


def test_pages_are_followed(cli, api: FakePublicApi, source) -> None:
    api.max_page = 3
    result, data = run_json(cli)
    assert result.exit_code == 0, result.stderr
    volume = [r for r in api.requests if r.path == "/events/volume"]
    assert len(volume) == 4  # 10 names, 3 a page
    assert [r.query.get("pagination.cursor") for r in volume] == [None, ["3"], ["6"], ["9"]]
    assert len(data["volume"]["events"]) == 10


def test_no_token_is_a_config_error(cli, monkeypatch) -> None:
    result = cli("status")
    assert result.exit_code == 3
    assert "Public API token" in result.stderr


def test_no_source_holds_the_write_key(cli, api: FakePublicApi, monkeypatch) -> None:
    api.add_source("other", write_keys=["another"])
    result = cli("status")
    assert result.exit_code == 3
    assert "--source" in result.stderr
    assert cli("status", "--source", "other", "--json").exit_code == 1


# ---------------------------------------------------------------------- window


@pytest.mark.parametrize(
    "since, chosen",
    [
        ("90m", "minute"),
        ("4h", "minute"),
        ("5h", "hour"),
        ("24h", "hour"),
        ("14d", "hour"),
        ("15d", "day"),
        ("29d", "day"),
    ],
)
def test_auto_picks_the_finest_granularity_that_fits(since: str, chosen: str) -> None:
    assert window_for(parse_duration(since), "auto", NOW).granularity == chosen


def test_the_window_ends_a_minute_ago_on_a_minute() -> None:
    window = window_for(timedelta(hours=1), "minute", NOW)
    assert window.end == datetime(2026, 12, 6, 11, 59, tzinfo=timezone.utc)
    assert window.start == datetime(2026, 12, 6, 10, 59, tzinfo=timezone.utc)
    assert len(window.buckets()) == 60


@pytest.mark.parametrize(
    "since, granularity", [("31d", "auto"), ("5h", "minute"), ("15d", "hour"), ("2d", "nope")]
)
def test_a_window_that_fits_no_granularity_is_refused(since: str, granularity: str) -> None:
    with pytest.raises(UsageError):
        window_for(parse_duration(since), granularity, NOW)


@pytest.mark.parametrize("text", ["", "24", "h", "1y", "30s", "2 days"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_a_window_that_fits_nothing_asks_nothing(cli, api: FakePublicApi, source) -> None:
    result = cli("status", "--since", "40d")
    assert result.exit_code == 2
    assert "fits no granularity" in result.stderr
    assert api.requests == []


# ---------------------------------------------------------------------- sums


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    volume=st.dictionaries(
        st.sampled_from(["Opened", "Closed", "Nudge Shown", "My Event", "Survey Response"]),
        st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=30),
        max_size=5,
    )
)
def test_sums_shown_equal_the_stand_ins_series(cli, api, source, volume) -> None:
    api.volume[source["id"]] = {(name, "track"): counts for name, counts in volume.items()}
    api.answered.clear()
    _, data = run_json(cli)
    answered = [item for page in api.answered for item in page["result"]]
    served = sum(point["count"] for item in answered for point in item["series"])
    assert data["volume"]["total"] == served
    by_name = {e["eventName"]: e["total"] for e in data["volume"]["events"]}
    for item in answered:
        assert by_name[item["eventName"]] == sum(p["count"] for p in item["series"])
    shown = cli("status")
    assert f"Segment): {served} events" in shown.stdout
    for name, total in by_name.items():
        assert any(
            line.split("|")[:2] == [f"{name:<{len(line.split('|')[0])}}", f" {total} "]
            or (line.startswith(name) and f" {total} " in line)
            for line in shown.stdout.splitlines()
        )


# ---------------------------------------------------------------------- watch


def test_watch_redraws_and_ctrl_c_ends_with_exit_0(cli, api, source, monkeypatch) -> None:
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(status_command, "pause", sleep)
    result = cli("status", "--json", "--watch", "5")
    assert result.exit_code == 0, result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 2 and all(d["healthy"] for d in documents)
    assert pauses == [5.0, 5.0]


def test_watch_keeps_within_the_volume_endpoints_budget(cli, api, source, monkeypatch) -> None:
    api.max_page = 3  # 4 volume requests a refresh
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(status_command, "pause", sleep)
    result = cli("status", "--json", "--watch", "1")
    assert result.exit_code == 0, result.stderr
    # 4 requests at most 30 a minute (half of Segment's 60): one refresh per 8 s.
    assert pauses == [8.0]
    assert "to stay within the rate limit" in result.stderr


def test_watch_alone_means_every_minute(cli, api, source, monkeypatch) -> None:
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(status_command, "pause", sleep)
    assert cli("status", "--watch", "--json").exit_code == 0
    assert pauses == [60.0]


# ---------------------------------------------------------------------- doctor


def test_doctor_checks_events_in_the_last_hour(cli, api: FakePublicApi, source) -> None:
    result = cli("doctor", "--json")
    found = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert found["public api"]["status"] == "pass"
    assert found["source events"]["status"] == "pass"
    assert "reached source command-ai in the last hour" in found["source events"]["detail"]
    asked = [r for r in api.requests if r.path == "/events/volume"][-1]
    assert asked.query["granularity"] == ["MINUTE"]
    api.volume[source["id"]] = {}
    result = cli("doctor", "--json")
    found = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert found["source events"]["status"] == "fail"
    assert result.exit_code == 1


# ---------------------------------------------------------------------- process


def test_as_a_real_process(api: FakePublicApi, source, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "80"}
    completed = subprocess.run(
        [sys.executable, "-m", "cmdai_cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    assert "HEALTHY" in completed.stdout
    assert max(len(line) for line in completed.stdout.splitlines()) <= 80


def test_names_from_outside_are_shown_as_plain_text(cli, api, source) -> None:
    api.volume[source["id"]][("[bold]Odd\x1b[2J", "track")] = [4]
    result = cli("status")
    assert "[bold]Odd?[2J" in result.stdout
    assert "\x1b" not in result.stdout
    _, data = run_json(cli)
    assert "[bold]Odd\x1b[2J" in data["volume"]["unknown"]


def test_watch_goes_on_after_a_refresh_that_cannot_reach_segment(cli, api, source, monkeypatch):
    api.fail("GET", "/sources", 0, times=3)  # the first refresh's tries all dropped
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(status_command, "pause", sleep)
    result = cli("status", "--json", "--watch", "5")
    assert result.exit_code == 0, result.stderr
    assert "trying again in 5 s" in result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_watch_in_a_terminal_redraws_with_the_verdict_on_top(cli, api, source, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(output, "is_terminal", lambda stream=None: True)

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(status_command, "pause", sleep)
    result = cli("status", "--watch", "5")
    assert result.exit_code == 0, result.stderr
    assert "\x1b[" in result.stdout  # drawn for a terminal: colour, cursor moves
    text = result.stdout
    assert text.index("HEALTHY") < text.index("Source in")
    assert "█" in text or "▇" in text  # block characters, not ASCII


def test_the_request_does_not_show_its_secrets() -> None:
    request = core.StatusRequest(
        api_host="https://api.segmentapis.com", token=TOKEN, write_key=WRITE_KEY
    )
    assert TOKEN not in repr(request) and WRITE_KEY not in repr(request)


def test_a_workspace_without_delivery_overview_still_gets_the_rest(cli, api, source) -> None:
    api.fail("GET", "/delivery-overview/.*", 403, times=2, body={"errors": [{"message": "beta"}]})
    result, data = run_json(cli)
    assert result.exit_code == 0, result.stderr
    assert data["delivery"] is None
    assert check(data, "delivery")["status"] == "skip"
    assert "Delivery Overview did not answer" in check(data, "delivery")["detail"]
    assert "Delivery Overview did not answer" in cli("status").stdout
