"""`cmdai validate` and `cmdai plan show` through the command line."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli import catalogue
from tests.test_help import HEAVY, PROBE
from tests.test_plans import IDENTIFY, ORDER, order


def ndjson(path: Path, events: list[Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def plan_file(tmp_path: Path, *rules: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"name": "Shop", "rules": list(rules)}))
    return path


def sample(name: str, **properties: Any) -> dict[str, Any]:
    return catalogue.build_message(catalogue.spec_for(name), user_id="u1", properties=properties)


def test_valid_events_exit_0_with_a_summary(cli, tmp_path: Path) -> None:
    events = ndjson(tmp_path / "e.ndjson", [sample(s.name) for s in catalogue.events()])
    result = cli("validate", str(events))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "validate: 18 events against 'Command AI event catalogue' (19 rules)" in result.stderr
    assert "0 with violations, 0 violations, 0 errors" in result.stderr


def test_each_violation_is_listed_and_summarised_and_exit_is_1(cli, tmp_path: Path) -> None:
    events = [
        sample("Opened"),
        sample("Closed", inputText=42),
        {"type": "track", "event": "Spotlight Opened", "properties": {"type": "x"}},
        sample("Closed", inputText=["a"]),
    ]
    result = cli("validate", str(ndjson(tmp_path / "e.ndjson", events)))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "#1 Closed: datatype mismatch at /properties/inputText: expected string or null, "
        "got integer",
        "#2 Spotlight Opened: unplanned event at /event: track event 'Spotlight Opened' is "
        "not in the plan",
        "#3 Closed: datatype mismatch at /properties/inputText: expected string or null, got array",
    ]
    assert "4 events against" in result.stderr
    assert "2 with violations" not in result.stderr
    assert "3 with violations, 3 violations" in result.stderr
    lines = result.stderr.splitlines()
    assert "  Closed: datatype mismatch: 2" in lines
    assert "  Spotlight Opened: unplanned event: 1" in lines


def test_json_is_ndjson_records_then_a_summary(cli, tmp_path: Path) -> None:
    plan = plan_file(tmp_path, ORDER, IDENTIFY)
    events = [order(), order(total="1", extra=True), {"type": "identify", "traits": {}}]
    result = cli("validate", "--json", "--plan", str(plan), str(ndjson(tmp_path / "e", events)))
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[:-1] == [
        {
            "index": 1,
            "event": "Order Completed",
            "kind": "datatype_mismatch",
            "pointer": "/properties/total",
            "message": "expected number, got string",
            "rule": "TRACK Order Completed",
        },
        {
            "index": 1,
            "event": "Order Completed",
            "kind": "additional_properties",
            "pointer": "/properties/extra",
            "message": "property 'extra' is not in the plan",
            "rule": "TRACK Order Completed",
        },
        {
            "index": 2,
            "event": "identify",
            "kind": "required_missing",
            "pointer": "/traits/email",
            "message": "required property 'email' is missing",
            "rule": "IDENTIFY",
        },
    ]
    assert records[-1] == {
        "summary": {
            "events": 3,
            "events_with_violations": 2,
            "violations": 3,
            "by_event": {
                "Order Completed": {"additional_properties": 1, "datatype_mismatch": 1},
                "identify": {"required_missing": 1},
            },
        }
    }


def test_reads_stdin_arrays_and_gzip_like_map_payload(cli, tmp_path: Path) -> None:
    bad = sample("Closed", inputText=1)
    result = cli("validate", "-", input=json.dumps([sample("Opened"), bad]))
    assert result.exit_code == 1
    assert result.stdout.startswith("#1 Closed:")
    packed = tmp_path / "e.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(bad).encode()))
    folder = tmp_path / "dir"
    folder.mkdir()
    ndjson(folder / "a.ndjson", [sample("Opened")])
    result = cli("validate", str(folder), str(packed))
    assert result.exit_code == 1
    assert result.stdout.startswith("#1 Closed:")


def test_unreadable_input_exits_4_after_checking_what_came_before(cli, tmp_path: Path) -> None:
    path = tmp_path / "e.ndjson"
    path.write_text(json.dumps(sample("Closed", inputText=1)) + "\n{not json\n")
    result = cli("validate", str(path))
    assert result.exit_code == 4
    assert result.stdout.startswith("#0 Closed:")
    assert f"{path}:2" in result.stderr
    assert "Traceback" not in result.stderr
    missing = cli("validate", str(tmp_path / "nope.ndjson"))
    assert missing.exit_code == 4
    assert "no such file" in missing.stderr


def test_on_error_skip_reports_and_goes_on(cli, tmp_path: Path) -> None:
    path = tmp_path / "e.ndjson"
    path.write_text("[1]\n" + json.dumps(sample("Opened")) + "\n")
    result = cli("validate", "--on-error", "skip", str(path))
    assert result.exit_code == 0, result.stderr
    assert "skipped record 0" in result.stderr
    assert "1 error" in result.stderr


def test_a_bad_plan_file_exits_3_naming_file_and_rule(cli, tmp_path: Path) -> None:
    plan = plan_file(tmp_path, ORDER, {"type": "TRACK", "key": "Bad", "jsonSchema": {"type": 5}})
    events = ndjson(tmp_path / "e", [order()])
    result = cli("validate", "--plan", str(plan), str(events))
    assert result.exit_code == 3
    assert f"{plan}: rule TRACK Bad: not a valid JSON Schema at /type" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("validate", "--plan", str(tmp_path / "none.json"), str(events))
    assert result.exit_code == 3
    assert "no such plan file" in result.stderr


def test_plan_show_builtin_lists_the_rules(cli) -> None:
    result = cli("plan", "show", "--builtin")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Command AI event catalogue: 19 rules"
    assert "TRACK Opened (version 1)" in lines
    assert "    type: string, required" in lines
    assert "    trigger: string or null" in lines


def test_plan_show_builtin_json_is_a_plan_file_validate_reads(cli, tmp_path: Path) -> None:
    result = cli("plan", "show", "--builtin", "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["source"] == "builtin"
    assert {r["type"] for r in shown["rules"]} == {"TRACK", "IDENTIFY"}
    path = tmp_path / "builtin.json"
    path.write_text(result.stdout)
    events = ndjson(tmp_path / "e", [sample("Opened"), sample("Closed", inputText=2)])
    again = cli("validate", "--plan", str(path), str(events))
    assert again.exit_code == 1
    assert again.stdout.startswith("#1 Closed: datatype mismatch")


def test_plan_show_a_file_and_usage_errors(cli, tmp_path: Path) -> None:
    path = plan_file(tmp_path, ORDER)
    result = cli("plan", "show", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "Shop: 1 rule",
        "TRACK Order Completed (version 1)",
        "  properties (no others):",
    ]
    assert "    currency: string" in result.stdout.splitlines()
    assert cli("plan", "show").exit_code == 2
    assert cli("plan", "show", "--builtin", str(path)).exit_code == 2


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["validate", "--help"], {}),
        (["plan", "show", "--help"], {}),
        (
            [],
            {
                "_CMDAI_COMPLETE": "complete_bash",
                "COMP_WORDS": "cmdai validate --",
                "COMP_CWORD": "2",
            },
        ),
    ],
    ids=["validate-help", "plan-show-help", "complete-validate"],
)
def test_help_and_completion_load_no_schema_library(args: list[str], env: dict[str, str]) -> None:
    heavy = (*HEAVY, "jsonschema", "fastjsonschema", "referencing")
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (heavy,), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    marker = done.stderr.rsplit("HEAVY:", 1)
    assert len(marker) == 2, done.stderr[-2000:]
    assert done.stdout.strip(), "the command printed nothing"
    assert marker[1].strip() == "", f"cmdai {' '.join(args)} imported {marker[1].strip()}"
