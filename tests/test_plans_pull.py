"""`cmdai plan pull` against the Public API stand-in, then `cmdai validate` offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli import public_api
from cmdai_cli.retry import RetryPolicy
from tests.conftest import TOKEN
from tests.fake_public_api import FakePublicApi, running
from tests.test_plans import IDENTIFY, ORDER, track_rule


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePublicApi]:
    monkeypatch.setattr(
        public_api,
        "DEFAULT_POLICY",
        RetryPolicy(max_retries=2, base_delay=0.001, max_delay=0.01, max_total_wait=1.0),
    )
    monkeypatch.setenv("CMDAI_PUBLIC_API_TOKEN", TOKEN)
    with running(TOKEN) as fake:
        monkeypatch.setenv("CMDAI_API_HOST", fake.url)
        yield fake


def shop_rules() -> list[dict[str, Any]]:
    extra = [track_rule(f"Step {n}", {"required": ["n"]}) for n in range(3)]
    return [ORDER, IDENTIFY, *extra]


def test_pull_reads_every_page_into_a_plan_file(cli, api: FakePublicApi, tmp_path: Path) -> None:
    plan = api.add_tracking_plan("Shop", shop_rules())
    out = tmp_path / "shop.json"
    result = cli("plan", "pull", "--tracking-plan", plan["id"], "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert f"Wrote 5 rules (TRACK 4, IDENTIFY 1) of 'Shop' to {out}" in result.stdout
    written = json.loads(out.read_text())
    assert written["name"] == "Shop"
    assert written["trackingPlanId"] == plan["id"]
    assert [r["key"] for r in written["rules"]] == [r["key"] for r in shop_rules()]
    assert written["rules"][0]["jsonSchema"] == ORDER["jsonSchema"]


def test_pull_follows_the_pages(cli, api: FakePublicApi, tmp_path: Path) -> None:
    many = [track_rule(f"Event {n:03d}", {}) for n in range(450)]
    plan = api.add_tracking_plan("Big", many)
    out = tmp_path / "big.json"
    result = cli("plan", "pull", "--tracking-plan", plan["id"], "--out", str(out))
    assert result.exit_code == 0, result.stderr
    keys = [r["key"] for r in json.loads(out.read_text())["rules"]]
    assert keys == [f"Event {n:03d}" for n in range(450)]
    rule_pages = [r for r in api.requests if r.path.endswith("/rules")]
    assert [r.query.get("pagination.cursor") for r in rule_pages] == [None, ["200"], ["400"]]
    assert all(r.query["pagination.count"] == ["200"] for r in rule_pages)
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in rule_pages)


def test_a_pulled_plan_is_then_used_offline(cli, api: FakePublicApi, tmp_path: Path) -> None:
    plan = api.add_tracking_plan("Shop", shop_rules())
    out = tmp_path / "shop.json"
    assert cli("plan", "pull", "--tracking-plan", plan["id"], "--out", str(out)).exit_code == 0
    seen = len(api.requests)
    events = tmp_path / "events.ndjson"
    lines = [
        {"type": "track", "event": "Step 1", "properties": {"n": 1}},
        {"type": "track", "event": "Step 2", "properties": {}},
        {"type": "identify", "traits": {"email": 5}},
    ]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    result = cli("--json", "validate", "--plan", str(out), str(events))
    assert result.exit_code == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r.get("index"), r.get("kind"), r.get("pointer")) for r in records[:-1]] == [
        (1, "required_missing", "/properties/n"),
        (2, "datatype_mismatch", "/traits/email"),
    ]
    assert records[-1]["summary"]["events"] == 3
    assert len(api.requests) == seen, "validate must not call the API"


def test_pull_without_out_prints_the_plan_file(cli, api: FakePublicApi) -> None:
    plan = api.add_tracking_plan("Shop", [ORDER])
    result = cli("plan", "pull", "--tracking-plan", plan["id"])
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["name"] == "Shop"
    assert printed["rules"][0]["key"] == "Order Completed"


def test_pull_json_summary(cli, api: FakePublicApi, tmp_path: Path) -> None:
    plan = api.add_tracking_plan("Shop", shop_rules())
    out = tmp_path / "p.json"
    result = cli("--json", "plan", "pull", "--tracking-plan", plan["id"], "--out", str(out))
    assert json.loads(result.stdout) == {
        "name": "Shop",
        "trackingPlanId": plan["id"],
        "rules": 5,
        "by_type": {"TRACK": 4, "IDENTIFY": 1},
        "out": str(out),
    }


def test_an_unknown_tracking_plan_is_refused(cli, api: FakePublicApi, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    result = cli("plan", "pull", "--tracking-plan", "tp_nope", "--out", str(out))
    assert result.exit_code == 5
    assert "404" in result.stderr
    assert "check the tracking plan's id" in result.stderr
    assert "source" not in result.stderr
    assert not out.exists()


def test_pull_needs_a_token(cli, api: FakePublicApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMDAI_PUBLIC_API_TOKEN")
    plan = api.add_tracking_plan("Shop", [ORDER])
    result = cli("plan", "pull", "--tracking-plan", plan["id"])
    assert result.exit_code == 3
    assert "no Segment Public API token" in result.stderr


def test_a_wrong_token_is_refused_and_not_printed(cli, api: FakePublicApi, secrets) -> None:
    wrong = secrets.add("sgp_WRONGTOKEN_99999999")
    plan = api.add_tracking_plan("Shop", [ORDER])
    result = cli("plan", "pull", "--tracking-plan", plan["id"], "--token", wrong)
    assert result.exit_code == 5
    assert "token" in result.stderr


def test_a_rate_limited_page_is_waited_out(cli, api: FakePublicApi, tmp_path: Path) -> None:
    plan = api.add_tracking_plan("Shop", shop_rules())
    api.fail("GET", r"/tracking-plans/[^/]+/rules", 429, body={"data": {"msBeforeNext": 1}})
    out = tmp_path / "p.json"
    result = cli("plan", "pull", "--tracking-plan", plan["id"], "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "rate limited" in result.stderr
    assert len(json.loads(out.read_text())["rules"]) == 5


def test_an_unusable_rule_from_segment_is_refused(cli, api: FakePublicApi) -> None:
    plan = api.add_tracking_plan("Shop", [{"type": "TRACK", "key": None}])
    result = cli("plan", "pull", "--tracking-plan", plan["id"])
    assert result.exit_code == 5
    assert "rule 1" in result.stderr
