"""`cmdai map-payload` end to end, through the CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from cmdai_cli import profile

IDENTIFY = {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}}
TRACK = {"type": "track", "userId": "u2", "event": "Opened", "properties": {"trigger": "k"}}
PAGE = {"type": "page", "anonymousId": "a1", "name": "Home"}


def ndjson(*events: Any) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def events_file(tmp_path: Path, *events: Any, name: str = "events.ndjson") -> str:
    path = tmp_path / name
    path.write_text(ndjson(*events), encoding="utf-8")
    return str(path)


def test_webhook_target_from_stdin(cli: Any) -> None:
    result = cli("map-payload", input=ndjson(IDENTIFY, TRACK, PAGE))
    assert result.exit_code == 0, result.stderr
    assert records(result.stdout) == [
        {"index": 0, "userId": "u1", "properties": {"plan": "pro"}, "ignored": None},
        {"index": 1, "userId": "u2", "properties": {}, "ignored": None},
        {"index": 2, "userId": None, "properties": {}, "ignored": "no userId"},
    ]
    assert "map-payload: 3 events: 2 recorded, 1 ignored, 0 errors" in result.stderr
    assert "ignored: no userId: 1" in result.stderr


def test_index_runs_across_files_and_dash(cli: Any, tmp_path: Path) -> None:
    first = events_file(tmp_path, IDENTIFY, TRACK, name="1.ndjson")
    second = tmp_path / "2.json.gz"
    second.write_bytes(gzip.compress(json.dumps([PAGE, IDENTIFY]).encode()))
    result = cli("map-payload", first, "-", str(second), input=ndjson(TRACK))
    assert result.exit_code == 0, result.stderr
    assert [(r["index"], r["userId"]) for r in records(result.stdout)] == [
        (0, "u1"),
        (1, "u2"),
        (2, "u2"),
        (3, None),
        (4, "u1"),
    ]


def test_destination_target_deploy_flag_and_profile_default(cli: Any, tmp_path: Path) -> None:
    path = events_file(tmp_path, IDENTIFY, TRACK, PAGE)
    result = cli("map-payload", path, "--target", "destination")
    assert records(result.stdout) == [
        {
            "index": 0,
            "action": "identifyUser",
            "call": "addMetadataBatch",
            "args": [{"plan": "pro"}, True],
            "ignored": None,
        },
        {
            "index": 1,
            "action": "trackEvent",
            "call": "trackEvent",
            "args": ["Opened", {"trigger": "k"}],
            "ignored": None,
        },
        {
            "index": 2,
            "action": None,
            "call": None,
            "args": [],
            "ignored": "page events make no call",
        },
    ]
    result = cli("map-payload", path, "--target", "destination", "--deploy")
    assert records(result.stdout)[0]["call"] == "boot"
    assert records(result.stdout)[0]["args"] == ["u1", {"plan": "pro"}, {}]

    profile.save_profile(profile.Store(), "default", {"deploy_via_segment": True})
    result = cli("map-payload", path, "--target", "destination")
    assert records(result.stdout)[0]["call"] == "boot"
    result = cli("map-payload", path, "--target", "destination", "--no-deploy")
    assert records(result.stdout)[0]["call"] == "addMetadataBatch"


def test_mapping_file_overrides_the_profile_mapping(cli: Any, tmp_path: Path) -> None:
    path = events_file(tmp_path, TRACK)
    profile.save_profile(
        profile.Store(),
        "default",
        {"mapping": {"userId": "$.userId", "user_property.trigger": "$.properties.trigger"}},
    )
    result = cli("map-payload", path)
    assert records(result.stdout)[0]["properties"] == {"trigger": "k"}

    mapping_file = tmp_path / "m.toml"
    mapping_file.write_text(
        '[mapping]\nuserId = "$.userId"\nuser_property_event = "$.event"\n', encoding="utf-8"
    )
    result = cli("map-payload", path, "--mapping", str(mapping_file), "--explain")
    assert records(result.stdout) == [
        {
            "index": 0,
            "userId": "u2",
            "properties": {"Opened": True},
            "ignored": None,
            "explain": {
                "Opened": {
                    "rule": "user_property_event",
                    "field": "user_property_event",
                    "path": "$.event",
                }
            },
        }
    ]


def test_a_bad_mapping_file_is_a_clear_data_error(cli: Any, tmp_path: Path) -> None:
    mapping_file = tmp_path / "m.toml"
    mapping_file.write_text('[mapping]\nuserId = "$.userId"\nplan = 5\n', encoding="utf-8")
    result = cli("map-payload", "--mapping", str(mapping_file), input=ndjson(IDENTIFY))
    assert result.exit_code == 4
    assert f"{mapping_file}:3 (plan): the source must be a string" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_profile_mapping_names_the_profile(cli: Any) -> None:
    profile.save_profile(profile.Store(), "default", {"mapping": {"userId": "$.user..id"}})
    result = cli("map-payload", input=ndjson(IDENTIFY))
    assert result.exit_code == 4
    assert "[profiles.default.mapping] (userId): bad path" in result.stderr


def test_fail_stops_with_file_and_line_after_earlier_output(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson"
    path.write_text(ndjson(IDENTIFY, TRACK) + "{oops\n" + ndjson(IDENTIFY), encoding="utf-8")
    result = cli("map-payload", str(path))
    assert result.exit_code == 4
    assert [r["index"] for r in records(result.stdout)] == [0, 1]
    assert f"cmdai: error: {path}:3: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_fail_on_traits_that_is_not_an_object(cli: Any, tmp_path: Path) -> None:
    path = events_file(tmp_path, IDENTIFY, {"userId": "u", "traits": "pro"}, TRACK)
    result = cli("map-payload", path, "--format", "json")
    assert result.exit_code == 4
    assert json.loads(result.stdout) == [
        {"index": 0, "userId": "u1", "properties": {"plan": "pro"}, "ignored": None}
    ]
    assert f"{path}:2: traits is not an object" in result.stderr


def test_skip_reports_each_bad_record_and_goes_on(cli: Any, tmp_path: Path) -> None:
    big = {"type": "identify", "userId": "u", "traits": {"blob": "x" * 40_000}}
    lines = [
        json.dumps(IDENTIFY),
        "not json",
        "",
        "[1]",
        json.dumps(big),
        json.dumps(TRACK),
    ]
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(("\r\n".join(lines)).encode() + b"\n" + b'{"userId": "\xff"}\n')
    result = cli("map-payload", str(path), "--on-error", "skip")
    assert result.exit_code == 0, result.stderr
    assert [r["index"] for r in records(result.stdout)] == [0, 4]
    assert f"{path}:2: skipped record 1: not valid JSON" in result.stderr
    assert f"{path}:4: skipped record 2: array item is not a JSON object" in result.stderr
    assert "over Segment's 32 KB limit" in result.stderr
    assert f"{path}:7: skipped record 5: invalid UTF-8" in result.stderr
    assert "6 events: 2 recorded, 0 ignored, 4 errors" in result.stderr


def test_json_and_table_formats(cli: Any, tmp_path: Path) -> None:
    path = events_file(tmp_path, IDENTIFY, PAGE)
    result = cli("map-payload", path, "--format", "json")
    assert [r["index"] for r in json.loads(result.stdout)] == [0, 1]
    result = cli("map-payload", path, "--json")
    assert [r["index"] for r in json.loads(result.stdout)] == [0, 1]
    result = cli("map-payload", path, "--format", "table")
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0]
    for column in ("index", "userId", "properties", "ignored"):
        assert column in header
    assert "no userId" in result.stdout
    assert '{"plan":"pro"}' in result.stdout
    result = cli("map-payload", path, "--format", "table", "--target", "destination")
    assert "addMetadataBatch" in result.stdout


def test_deeply_nested_event_is_mapped_as_javascript_does(cli: Any, tmp_path: Path) -> None:
    deep: Any = "x"
    for _ in range(1500):
        deep = {"a": deep}
    path = tmp_path / "deep.ndjson"
    path.write_bytes(
        orjson.dumps(IDENTIFY)
        + b"\n"
        + b'{"userId":"u","traits":'
        + b'{"a":' * 1500
        + b'"x"'
        + b"}" * 1500
        + b"}\n"
    )
    # Past orjson's 1,024 levels JSON.parse still reads it, and the webhook records it.
    result = cli("map-payload", str(path), "--on-error", "skip")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[1] == (
        '{"index":1,"userId":"u","properties":'
        + '{"a":' * 1500
        + '"x"'
        + "}" * 1500
        + ',"ignored":null}'
    )
    assert "Traceback" not in result.stderr


def test_missing_input_file(cli: Any, tmp_path: Path) -> None:
    result = cli("map-payload", str(tmp_path / "nope.ndjson"))
    assert result.exit_code == 4
    assert "no such file or directory" in result.stderr


def test_help_documents_the_precedence(cli: Any) -> None:
    result = cli("map-payload", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "more specific one wins" in text
    for flag in ("--target", "--mapping", "--deploy", "--on-error", "--format", "--explain"):
        assert flag in text


def test_a_reader_that_goes_away_ends_the_run_quietly(tmp_path: Path) -> None:
    """`| head`: stdout is let go of, with no traceback and no complaint on the way out."""
    events = ({**IDENTIFY, "userId": f"u{n}"} for n in range(20_000))
    source = events_file(tmp_path, *events)
    command = [sys.executable, "-m", "cmdai_cli", "map-payload", source, "--format", "ndjson"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b"{")
    process.stdout.close()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"Exception ignored" not in err
    assert b"map-payload: " in err  # the summary still says what was done


def test_reading_a_terminal_says_so_and_ends_at_ctrl_d() -> None:
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "cmdai_cli", "map-payload"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        os.close(follower)
        assert proc.stderr is not None
        notice = proc.stderr.readline().decode()
        assert notice == "cmdai: reading events from stdin (end with Ctrl-D, or give a FILE)\n"
        os.write(leader, b'{"type":"identify","userId":"u1","traits":{"plan":"team"}}\n\x04')
        out, _ = proc.communicate(timeout=30)
    os.close(leader)
    assert proc.returncode == 0
    assert json.loads(out.decode().splitlines()[0])["userId"] == "u1"


def test_reading_a_pipe_says_nothing_of_it(cli) -> None:
    result = cli("map-payload", input='{"type":"identify","userId":"u1","traits":{}}\n')
    assert "reading events from stdin" not in result.stderr
