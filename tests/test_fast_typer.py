"""The Typer speed-ups: active on the pinned Typer, and plain Typer behaviour without them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import typer

from cmdai_cli import _fast_typer
from cmdai_cli.cli import app


def test_fast_path_is_active_on_the_pinned_typer() -> None:
    # When this fails after a Typer upgrade, cmdai still works (the tests below), but
    # `--help` and Tab load pydantic again: adapt _fast_typer.py to the new internals.
    assert _fast_typer.fast_path_active(), (
        f"typer {typer.__version__} lacks the internals _fast_typer uses"
    )


def test_help_converts_no_option_on_the_fast_path(cli) -> None:
    command = typer.main.get_group(app)
    ctx = command.make_context("cmdai", ["doctor"], resilient_parsing=True)
    doctor = command.get_command(ctx, "doctor")
    assert doctor is not None
    with doctor.make_context("doctor", ["--timeout", "5", "--host", "x"]) as sub:
        params: dict[str | None, Any] = {p.name: p for p in doctor.get_params(sub)}
    # Text and flags pass through as given; the float keeps Typer's own conversion.
    assert type(params["host"]._runtime_param).__name__ == "PassThroughRuntimeParam"
    assert type(params["send_test"]._runtime_param).__name__ == "PassThroughRuntimeParam"
    assert sub.params["timeout"] == 5.0


def test_without_the_internals_typer_converts_as_usual(
    monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.setattr(_fast_typer, "FAST_COERCION", False)
    monkeypatch.setattr(_fast_typer, "FAST_COMPLETION", False)
    assert not _fast_typer.fast_path_active()
    bad = cli("doctor", "--timeout", "soon")
    assert bad.exit_code == 2
    assert bad.stderr == "cmdai: error: --timeout must be a number (got 'soon')\n"
    done = cli("--json", "completion", "fish")
    assert done.exit_code == 0, done.stderr
    assert cli("send-test", "--help").stdout.startswith("Usage: cmdai send-test")
    root = typer.main.get_command(app)
    ctx = root.make_context("cmdai", [], resilient_parsing=True)
    names = [item.value for item in root.shell_complete(ctx, "con")]
    assert names == ["connect"]


def test_fast_completion_lists_commands_from_the_table() -> None:
    root = typer.main.get_command(app)
    ctx = root.make_context("cmdai", [], resilient_parsing=True)
    items = root.shell_complete(ctx, "d")
    assert [(item.value, item.help) for item in items] == [
        ("destination", "Set up Segment's Command AI and webhook..."),
        ("doctor", "Check the profile, the write key, and that..."),
    ]


def test_a_parameter_with_other_internals_is_left_to_typer() -> None:
    odd: Any = SimpleNamespace(type_descriptor=SimpleNamespace(), _runtime_param=None)
    _fast_typer.cheap_coercion([odd], completing=False)
    assert odd._runtime_param is None
