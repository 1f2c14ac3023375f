"""`cmdai trigger`'s scenarios: the format and its checks, the generator, the file output."""

from __future__ import annotations

import itertools
import json
import re
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from cmdai_cli.plans.builtin import builtin_plan
from cmdai_cli.plans.check import Validator
from cmdai_cli.scenarios import format as scenario_format
from cmdai_cli.scenarios.run import TriggerRequest, load_checked, parse_start, trigger
from cmdai_cli.segment.messages import check_message

BUILTINS = ["day", "first-run", "nudge", "questlist", "search-miss", "shortcut", "survey"]
START = "2026-03-02T09:00:00Z"


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def write(tmp_path: Path, text: str, name: str = "flow.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# ---------------------------------------------------------------- built-in scenarios


def test_the_builtins_are_listed_and_shipped() -> None:
    assert scenario_format.builtin_names() == BUILTINS
    assert all(description for _, description in scenario_format.describe_builtins())


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_passes_the_builtin_plan(name: str) -> None:
    load_checked([name], ())  # the check itself: every option of every step
    validator = Validator(builtin_plan())
    request = TriggerRequest(scenarios=(name,), users=60, seed=5, dry_run=True)
    result = trigger(request)
    assert result.generated > 60
    # and what the generator makes, drawn as a run draws it
    from cmdai_cli.scenarios.generate import Plan, events

    [scenario] = load_checked([name], ())
    made = list(events(Plan((scenario,), 60, 5, 0, 3600.0, "k")))
    assert len(made) == result.generated
    for message in made:
        assert check_message(message) is None
        assert validator.check(message) == [], message


def test_nudge_keeps_its_id_from_step_to_step() -> None:
    from cmdai_cli.scenarios.generate import Plan, events

    [scenario] = load_checked(["nudge"], ())
    by_session: dict[str, set[Any]] = {}
    for message in events(Plan((scenario,), 200, 1, 0, 600.0, "k")):
        props = message["properties"]
        by_session.setdefault(props["session"], set()).add((props["id"], props["slug"]))
        assert props["end_user"]["slug"] == message["userId"]
    assert len(by_session) == 200
    assert all(len(pairs) == 1 for pairs in by_session.values())


def test_list(cli) -> None:
    result = cli("trigger", "--list")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == BUILTINS
    listed = json.loads(cli("--json", "trigger", "--list").stdout)
    assert [s["name"] for s in listed["scenarios"]] == BUILTINS


# ---------------------------------------------------------------- mistakes in a user's file

GOOD_HEAD = """
description = "mine"

[[steps]]
id = "open"
event = "Opened"

"""


@pytest.mark.parametrize(
    ("body", "line", "step", "words"),
    [
        ('[[steps]]\nevent = "Nudge Shwon"\n', 8, "step 2 (Nudge Shwon)", "unknown event"),
        (
            '[[steps]]\nevent = "Closed"\nproperties.inputText = "${steps.search.properties.q}"\n',
            9,
            "step 2 (Closed)",
            "broken reference ${steps.search.properties.q}: no earlier step has id 'search'",
        ),
        (
            '[[steps]]\nevent = "Closed"\nproperties.inputText = "${steps.open.properties.nope}"\n',
            9,
            "step 2 (Closed)",
            "that step's event has no 'nope'",
        ),
        (
            '[[steps]]\nevent = "Closed"\nproperties.x = "${user.traits.shoe_size}"\n',
            9,
            "step 2 (Closed)",
            "the user has no trait 'shoe_size'",
        ),
        (
            '[[steps]]\nevent = "Closed"\n\nproperties.inputText = { choice = ["a", "b"], '
            "weights = [1, -2] }\n",
            10,
            "step 2 (Closed)",
            "bad weight -2",
        ),
        (
            '[[steps]]\nevent = { choice = ["Closed", "Opened"], weights = [1] }\n',
            8,
            "step 2",
            "weights must be a list of 2 numbers",
        ),
        ('[[steps]]\nevent = "Closed"\ndelay = "2 parsecs"\n', 9, "step 2 (Closed)", "bad delay"),
        (
            '[[steps]]\nevent = "Closed"\ndelay = { min = "5s", max = "1s" }\n',
            9,
            "step 2 (Closed)",
            "bad delay: min '5s' is above max '1s'",
        ),
        ('[[steps]]\nevent = "Closed"\nchance = 1.5\n', 9, "step 2 (Closed)", "bad chance"),
        ('[[steps]]\nevent = "Closed"\nrepaet = 2\n', 9, "step 2 (Closed)", "unknown key 'repaet'"),
        (
            '[[steps]]\nevent = "Closed"\nwhen = { step = "open", event = "Closed" }\n',
            9,
            "step 2 (Closed)",
            "step 'open' never sends 'Closed'",
        ),
        (
            '[[steps]]\nevent = "Command Execution"\nproperties.commandText = 7\n',
            7,
            "step 2 (Command Execution)",
            "would break the built-in tracking plan",
        ),
    ],
)
def test_a_mistake_names_file_line_and_step(
    cli, tmp_path: Path, body: str, line: int, step: str, words: str
) -> None:
    path = write(tmp_path, GOOD_HEAD + body)
    result = cli("trigger", str(path), "--out", str(tmp_path / "out.ndjson"))
    assert result.exit_code == 4, result.stderr
    assert f"{path}:{line} ({step}): " in result.stderr
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert not (tmp_path / "out.ndjson").exists()  # checked before anything is made


def test_a_reference_to_a_step_that_may_not_happen_is_broken(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD_HEAD + '[[steps]]\nid = "maybe"\nevent = "Closed"\nchance = 0.5\n\n'
        '[[steps]]\nevent = "Closed"\n'
        'properties.inputText = "${steps.maybe.properties.inputText}"\n',
    )
    with pytest.raises(Exception, match=r"flow.toml:14 \(step 3 \(Closed\)\).*may not happen"):
        load_checked([str(path)], ())


def test_toml_syntax_error_names_its_line(cli, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_HEAD + '[[steps]]\nevent = "Closed\n')
    result = cli("trigger", str(path), "--dry-run")
    assert result.exit_code == 4
    assert f"{path}:8: invalid TOML" in result.stderr


def test_an_unknown_scenario_name_is_a_usage_error(cli) -> None:
    result = cli("trigger", "nudgee", "--dry-run")
    assert result.exit_code == 2
    assert "no built-in scenario 'nudgee'" in result.stderr and "nudge" in result.stderr


def test_a_user_file_with_every_feature(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        description = "checkout"
        [user]
        organization = "org_7"
        traits = { plan = { choice = ["pro", "team"] }, seats = { between = [1, 50] } }

        [[steps]]
        event = "identify"
        traits.userAttributes = { plan = "${user.traits.plan}", seats = "${user.traits.seats}" }

        [[steps]]
        id = "run"
        event = "Command Execution"
        delay = { min = "1s", max = "2s" }
        repeat = { min = 2, max = 2 }
        properties.commandText = "Upgrade to ${user.traits.plan}"

        [[steps]]
        event = "Closed"
        delay = 3
        properties.inputText = "${steps.run.properties.commandText}"
        """,
    )
    [scenario] = load_checked([str(path)], ())
    from cmdai_cli.scenarios.generate import Plan, events

    made = list(events(Plan((scenario,), 1, 3, 1_000_000, 0.0, "k")))
    assert [m.get("event", m["type"]) for m in made] == [
        "identify",
        "Command Execution",
        "Command Execution",
        "Closed",
    ]
    plan = made[0]["traits"]["userAttributes"]["plan"]
    assert made[0]["traits"]["userAttributes"]["seats"] in range(1, 51)
    assert all(m["properties"]["organization"] == "org_7" for m in made[1:])
    assert made[3]["properties"]["inputText"] == f"Upgrade to {plan}"
    stamps = [datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")) for m in made]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert 1 <= gaps[0] <= 2 and 1 <= gaps[1] <= 2 and gaps[2] == 3


# ---------------------------------------------------------------- determinism and options


def run_to_file(cli, out: Path, *args: str) -> Any:
    result = cli("--json", "trigger", *args, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_the_same_seed_gives_the_same_bytes(cli, tmp_path: Path) -> None:
    a, b, c, d = (tmp_path / f"{n}.ndjson" for n in "abcd")
    args = ("day", "--users", "200", "--seed", "42", "--start", START)
    run_to_file(cli, a, *args)
    run_to_file(cli, b, *args)
    assert a.read_bytes() == b.read_bytes()
    ids = [m["messageId"] for m in lines(a)]
    assert len(set(ids)) == len(ids)
    run_to_file(cli, c, "day", "--users", "200", "--seed", "43", "--start", START)
    assert c.read_bytes() != a.read_bytes()
    # Another start moves the clock only: the same events, the same messageIds.
    run_to_file(cli, d, "day", "--users", "200", "--seed", "42", "--start", "2026-04-01")
    assert [m["messageId"] for m in lines(d)] == ids
    assert lines(d)[0]["timestamp"] != lines(a)[0]["timestamp"]


def test_events_are_in_time_order_within_the_window(cli, tmp_path: Path) -> None:
    out = tmp_path / "o.ndjson"
    summary = run_to_file(cli, out, "nudge", "--users", "300", "--duration", "2h", "--start", START)
    made = lines(out)
    assert summary["events"] == len(made) == sum(summary["byEvent"].values())
    stamps = [m["timestamp"] for m in made]
    assert stamps == sorted(stamps)
    assert stamps[0] >= "2026-03-02T09:00:00.000Z"
    # sessions start within 2 h; a nudge's life lasts at most 30 s + 2 min after
    assert stamps[-1] <= "2026-03-02T11:02:31.000Z"
    assert len({m["userId"] for m in made}) == 300


def test_start_in_the_past(cli, tmp_path: Path) -> None:
    out = tmp_path / "o.ndjson"
    before = datetime.now(timezone.utc)
    run_to_file(cli, out, "day", "--users", "50", "--start", "-7d", "--duration", "1d")
    stamps = [datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")) for m in lines(out)]
    assert before - timedelta(days=7, seconds=5) <= min(stamps)
    assert max(stamps) <= before - timedelta(days=5)


@pytest.mark.parametrize("users", ["1", "100"])
def test_by_default_nothing_is_stamped_in_the_future(cli, tmp_path: Path, users: str) -> None:
    out = tmp_path / "o.ndjson"
    for seed in range(5):  # one user's day: up to 4 sessions one after another
        run_to_file(cli, out, "day", "first-run", "--users", users, "--seed", str(seed))
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        assert max(m["timestamp"] for m in lines(out)) <= now.replace("+00:00", "Z")


def test_parse_start() -> None:
    now = datetime(2026, 5, 8, 12, tzinfo=timezone.utc)
    assert parse_start("-7d", now) == datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    assert parse_start("-90m", now) == datetime(2026, 5, 8, 10, 30, tzinfo=timezone.utc)
    assert parse_start("2026-01-02") == datetime(2026, 1, 2, tzinfo=timezone.utc)
    with pytest.raises(Exception, match="--start 'yesterday'"):
        parse_start("yesterday")


def test_set_overrides_every_step_that_has_the_path(cli, tmp_path: Path) -> None:
    out = tmp_path / "o.ndjson"
    run_to_file(
        cli,
        out,
        "first-run",
        "--users",
        "20",
        "--set",
        "properties.organization=org_42",
        "--set",
        'traits.formFactor={"type": "inline"}',
        "--set",
        "properties.ranking=9",
    )
    made = lines(out)
    tracks = [m for m in made if m["type"] == "track"]
    assert tracks and all(m["properties"]["organization"] == "org_42" for m in tracks)
    assert all(
        m["traits"]["formFactor"] == {"type": "inline"} for m in made if m["type"] == "identify"
    )
    runs = [m for m in tracks if m["event"] == "Command Execution"]
    assert runs and all(m["properties"]["ranking"] == 9 for m in runs)
    assert all("ranking" not in m["properties"] for m in tracks if m["event"] == "Opened")


def test_set_that_no_step_has_or_that_breaks_the_plan(cli, tmp_path: Path) -> None:
    missing = cli("trigger", "nudge", "--dry-run", "--set", "properties.nope.deep=1")
    assert missing.exit_code == 2
    assert "--set properties.nope.deep: no step's event has it" in missing.stderr
    broken = cli("trigger", "first-run", "--dry-run", "--set", "properties.commandText=5")
    assert broken.exit_code == 4
    assert "would break the built-in tracking plan" in broken.stderr
    assert "(step 4 (Command Execution))" in broken.stderr
    bad = cli("trigger", "nudge", "--dry-run", "--set", "organization")
    assert bad.exit_code == 2


def test_dry_run_writes_and_sends_nothing(cli, tmp_path: Path) -> None:
    out = tmp_path / "o.ndjson"
    result = cli("trigger", "survey", "--users", "40", "--dry-run", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert not out.exists()
    assert "survey: would write" in result.stderr
    assert re.search(r"Nudge Shown +40\n", result.stderr)  # every survey begins shown
    # and with no profile at all: a dry run needs no write key
    assert cli("trigger", "survey", "--dry-run").exit_code == 0


def test_out_dash_is_stdout_with_the_summary_on_stderr(cli) -> None:
    result = cli("trigger", "shortcut", "--seed", "1", "--out", "-")
    assert result.exit_code == 0
    made = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["event"] for m in made] == ["Opened", "User Changed Shortcut", "Closed"]
    assert "shortcut: wrote 3 events to stdout" in result.stderr


def test_bad_option_values(cli) -> None:
    assert cli("trigger", "nudge", "--users", "0", "--dry-run").exit_code == 2
    bad = cli("trigger", "nudge", "--duration", "soon", "--dry-run")
    assert bad.exit_code == 2
    # Examples of the scale --duration is given in, as its help's are.
    assert "bad --duration 'soon'" in bad.stderr and "'30m', '8h' or '7d'" in bad.stderr
    assert cli("trigger", "nudge", "--out", "-", "--rate", "5").exit_code == 2
    assert cli("trigger", "--dry-run").exit_code == 2


# ---------------------------------------------------------------- what reads the file


def test_a_day_file_is_taken_by_map_payload_validate_and_replay(cli, tmp_path: Path) -> None:
    out = tmp_path / "day.ndjson"
    summary = run_to_file(cli, out, "day", "--users", "1000", "--seed", "9")
    count = summary["events"]
    assert count == len(lines(out)) > 3000
    mapped = cli("map-payload", str(out))
    assert mapped.exit_code == 0, mapped.stderr
    assert len(mapped.stdout.splitlines()) == count
    valid = cli("--json", "validate", str(out))
    assert valid.exit_code == 0, valid.stdout[-500:]
    replayed = cli("--json", "replay", str(out), "--to", "segment", "--dry-run")
    assert replayed.exit_code == 0, replayed.stderr
    report = json.loads(replayed.stdout)
    assert report["read"] == report["would_send"] == count


def test_a_mix_of_files_takes_its_users_from_the_first_scenario(cli, tmp_path: Path) -> None:
    write(
        tmp_path,
        """
        [[steps]]
        event = "Opened"
        properties.team = "${user.traits.team}"
        """,
        "team.toml",
    )
    write(
        tmp_path,
        """
        description = "a mix of mine"
        sessions = 2
        [user]
        traits = { team = { choice = ["red", "blue"] } }
        [mix]
        "team.toml" = 1
        shortcut = 1
        """,
        "mix.toml",
    )
    out = tmp_path / "o.ndjson"
    run_to_file(cli, out, str(tmp_path / "mix.toml"), "--users", "30", "--seed", "1")
    made = lines(out)
    assert {m["properties"]["team"] for m in made if "team" in m["properties"]} == {"red", "blue"}
    assert {m["event"] for m in made} >= {"Opened", "User Changed Shortcut"}
    # run on its own, the flow's users have the built-in traits, without a team
    alone = cli("trigger", str(tmp_path / "team.toml"), "--dry-run")
    assert alone.exit_code == 4
    assert "the user has no trait 'team'" in alone.stderr


def test_the_builtins_are_package_data() -> None:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["cmdai_cli.scenarios"]
    folder = root / "src" / "cmdai_cli" / "scenarios"
    shipped = {p for pattern in patterns for p in folder.glob(pattern)}
    assert shipped == set((folder / "builtin").glob("*.toml"))
    assert len(shipped) == len(BUILTINS)


def test_json_and_out_dash_are_not_both_stdout(cli) -> None:
    result = cli("--json", "trigger", "nudge", "--out", "-")
    assert result.exit_code == 2
    assert "would both write to stdout" in result.stderr


def test_tab_completes_scenario_names() -> None:
    from cmdai_cli.commands.trigger import complete_scenarios

    assert complete_scenarios("s") == ["search-miss", "shortcut", "survey"]
    assert complete_scenarios("") == BUILTINS


def test_the_check_sees_every_option_of_every_choice(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD_HEAD + "[[steps]]\n"
        'event = { choice = ["Closed", "Command Execution"], weights = [9, 1] }\n'
        'properties.commandText = { choice = ["a", "b", "c", "d", "e", "f", "g", 8], '
        "weights = [9, 9, 9, 9, 9, 9, 9, 1] }\n",
    )
    where = r"flow.toml:7 \(step 2 \(Closed \| Command Execution\)\): "
    wrong = r"expected string or null, got integer at /properties/commandText"
    with pytest.raises(Exception, match=where + ".*" + wrong):
        load_checked([str(path)], ())
    # an option of weight 0 is never drawn, so it is not checked either
    fixed = path.read_text().replace("9, 1] }", "9, 0] }")
    path.write_text(fixed)
    load_checked([str(path)], ())
