"""Help for every command, the lazy command table, and what start-up leaves unimported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer._click import Context
from typer.core import TyperGroup

from cmdai_cli import _fast_typer
from cmdai_cli import cli as cli_module
from cmdai_cli.cli import COMMANDS, app


def load_module_commands(module: str) -> dict[str, Any]:
    return _fast_typer.commands_of(_fast_typer.holder_of(module, "cmdai_cli.commands"))


def modules() -> list[str]:
    return list(dict.fromkeys(entry.module for entry in COMMANDS.values()))


def walk(cmd: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    yield cmd, ctx
    if isinstance(cmd, TyperGroup):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, Context(sub, info_name=name, parent=ctx))


def every_command() -> list[tuple[str, Any, Any]]:
    root = typer.main.get_command(app)
    ctx = Context(root, info_name="cmdai", **root.context_settings)
    return [(c.command_path, cmd, c) for cmd, c in walk(root, ctx)]


def test_command_table_matches_what_modules_register() -> None:
    registered: dict[str, str] = {}
    for module in modules():
        for name in load_module_commands(module):
            registered[name] = module
    for name, module in registered.items():
        entry = COMMANDS.get(name)
        assert entry is not None and entry.module == module, (
            f"cmdai_cli.commands.{module} registers {name!r}: add "
            f'"{name}": Entry("{module}", ...) to COMMANDS in cli.py'
        )


def missing_help(commands: list[tuple[str, Any, Any]]) -> list[str]:
    missing = []
    for path, cmd, _ in commands:
        if not (cmd.help or cmd.short_help):
            missing.append(f"{path}: no help text")
        for param in cmd.params:
            if not getattr(param, "help", None):
                missing.append(f"{path} {param.opts[0]}: no help text")
    return missing


def test_every_command_and_option_has_help() -> None:
    missing = missing_help(every_command())
    assert not missing, "\n".join(missing)


def test_missing_help_is_found() -> None:
    bare = typer.Typer()

    @bare.command("quiet")
    def quiet(count: int = typer.Option(1, "--count")) -> None:
        pass

    @bare.command("told")
    def told(name: str = typer.Option("x", "--name", help="A name.")) -> None:
        """Has help."""

    root = typer.main.get_command(bare)
    ctx = Context(root, info_name="bare")
    found = missing_help([(c.command_path, cmd, c) for cmd, c in walk(root, ctx)])
    assert found == [
        "bare: no help text",
        "bare quiet: no help text",
        "bare quiet --count: no help text",
    ]


def test_every_command_answers_help(cli) -> None:
    paths = [path for path, _, _ in every_command()]
    assert {"cmdai", "cmdai doctor", "cmdai completion"} <= set(paths)
    for path in paths:
        args = path.split()[1:]
        for flag in ("--help", "-h"):
            result = cli(*args, flag)
            assert result.exit_code == 0, (path, result.stderr)
            assert result.stdout.startswith(f"Usage: {path}"), result.stdout[:200]


def test_root_help_lists_each_command_with_its_first_sentence(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    listing = result.stdout.split("Commands:", 1)[1]
    for name in COMMANDS:
        if load_module_commands(COMMANDS[name].module):
            assert f"\n  {name} " in listing, name
    # Whole first sentences, not cut off with "...".
    assert "..." not in listing
    assert "Settings resolve in this order" in result.stdout
    # The plain formatter: no Rich boxes.
    assert "╭" not in result.stdout


def test_global_options_before_or_after_a_command(cli) -> None:
    before = cli("--json", "completion", "fish")
    after = cli("completion", "fish", "--json")
    assert before.exit_code == after.exit_code == 0
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert cli("completion", "--version").stdout.startswith("cmdai ")


def test_a_bare_group_prints_its_help_on_stdout_and_exits_0() -> None:
    """`cmdai` alone, as a real process: a request for the list of commands."""
    for args in ([], ["profile"]):
        done = subprocess.run(
            [sys.executable, "-m", "cmdai_cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"Usage: cmdai {' '.join(args)}".rstrip() + " [OPTIONS]")
        assert "Commands:" in done.stdout and done.stderr == ""


def test_mistyped_command_suggests_the_right_one(cli) -> None:
    result = cli("doctr")
    assert result.exit_code == 2
    assert "Did you mean 'doctor'?" in result.stderr


def test_unknown_name_in_table_still_resolves(monkeypatch: pytest.MonkeyPatch, cli) -> None:
    # A module may register a name the table lacks: running it still finds it. (Listing
    # it would mean importing every module for `--help`; the table test above keeps the
    # table complete instead.)
    table = {name: entry for name, entry in COMMANDS.items() if name != "completion"}
    table["shell-scripts"] = _fast_typer.Entry("completion", "Shell scripts.")
    monkeypatch.setattr(cli_module, "COMMANDS", table)
    result = cli("completion", "bash")
    assert result.exit_code == 0, result.stderr
    assert "_CMDAI_COMPLETE=complete_bash" in result.stdout


HEAVY = ("httpx", "pydantic", "rich", "segment", "orjson", "requests", "fsspec", "s3fs")

PROBE = """
import sys
sys.argv = ["cmdai", *sys.argv[1:]]
from cmdai_cli.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
sys.stderr.write("\\nHEAVY:" + ",".join(heavy) + "\\n")
"""


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--help"], {}),
        (["--version"], {}),
        (["send-test", "--help"], {}),
        ([], {"_CMDAI_COMPLETE": "complete_bash", "COMP_WORDS": "cmdai ", "COMP_CWORD": "1"}),
        (
            [],
            {
                "_CMDAI_COMPLETE": "complete_bash",
                "COMP_WORDS": "cmdai send-test --",
                "COMP_CWORD": "2",
            },
        ),
        (
            [],
            {
                "_CMDAI_COMPLETE": "complete_bash",
                "COMP_WORDS": "cmdai replay --to ",
                "COMP_CWORD": "3",
            },
        ),
        (
            [],
            {
                "_CMDAI_COMPLETE": "complete_bash",
                "COMP_WORDS": "cmdai send-test --event nud",
                "COMP_CWORD": "3",
            },
        ),
    ],
    ids=[
        "help",
        "version",
        "send-test-help",
        "complete-commands",
        "complete-options",
        "complete-replay-to",
        "complete-event",
    ],
)
def test_start_up_does_not_import_heavy_modules(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    marker = done.stderr.rsplit("HEAVY:", 1)
    assert len(marker) == 2, done.stderr[-2000:]
    assert done.stdout.strip(), "the command printed nothing"
    loaded = marker[1].strip()
    assert loaded == "", f"cmdai {' '.join(args)} imported {loaded}"


def test_table_shows_what_the_full_commands_show() -> None:
    # The command list is built from the table (no module imported): the same short
    # help as the full commands, which are none of them hidden.
    for name, entry in COMMANDS.items():
        full = load_module_commands(entry.module)[name]
        stand_in = typer.core.TyperCommand(name, help=entry.short_help)
        for limit in (45, _fast_typer.SHORT_HELP_LIMIT):
            assert stand_in.get_short_help_str(limit) == full.get_short_help_str(limit), name
        assert not full.hidden


def test_listing_imports_no_command_module() -> None:
    probe = (
        "import sys\n"
        "sys.argv = ['cmdai', '--help']\n"
        "from cmdai_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('cmdai_cli.commands.'))\n"
        "sys.stderr.write('LOADED:' + ','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stderr.rsplit("LOADED:", 1)[1] == "cmdai_cli.commands._common"


@pytest.mark.parametrize(
    "args,env,line",
    [
        (
            ["map-payload", "x.ndjson", "--target", "nope"],
            {},
            "--target must be one of destination, webhook (got 'nope')",
        ),
        (
            ["expect", "--from", "x.ndjson", "--event", "Opened", "--count", "-1"],
            {},
            "--count must be at least 0 (got '-1')",
        ),
        (
            ["replay", "--to", "mail", "x"],
            {},
            "--to must be one of bulk-identify, segment, webhook",
        ),
        (["doctor", "--timeout", "soon"], {}, "--timeout must be a number (got 'soon')"),
        (
            ["send-test", "--event", "Opened"],
            {"CMDAI_REGION": "mars"},
            "$CMDAI_REGION must be one of eu, us (got 'mars')",
        ),
        (["completion"], {}, "missing argument 'SHELL'. Choose from: bash, zsh, fish"),
    ],
)
def test_usage_errors_are_one_line_naming_the_flag_or_variable(
    cli, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], line: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = cli(*args)
    assert result.exit_code in (2, 3), result.stderr
    [said] = result.stderr.splitlines()
    assert said.startswith("cmdai: error: " + line), said
    assert "Input should" not in said and "Value error" not in said and result.stdout == ""
