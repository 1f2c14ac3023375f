"""Shared fixtures: an isolated config directory, a CLI runner, and the secret guard.

The guard: every secret a test configures through `secrets` (and the fixed ones below)
must never appear in any output the test captured, from CliRunner or from the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmdai_cli import redact
from cmdai_cli.cli import app


def _start_the_resource_tracker_unmeasured() -> None:
    """Start multiprocessing's resource tracker now, outside coverage's measurement.

    Replay's Segment worker (run in-process by CliRunner) starts the tracker, a Python
    process that lives as long as the test session and runs nothing of cmdai. Started
    under coverage's subprocess patch, it writes its (empty) data file only once the
    session has ended, after the data files were combined, and leaves a `.coverage.*`
    file behind.
    """
    from multiprocessing import resource_tracker

    names = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        resource_tracker.ensure_running()
    finally:
        os.environ.update(saved)


_start_the_resource_tracker_unmeasured()

WRITE_KEY = "wk_TESTSECRET_0123456789abcdef"
TOKEN = "sgp_TESTTOKEN_0123456789abcdef"
SHARED_SECRET = "whsec_TESTSHARED_0123456789"
CLOSED_CDN = "http://127.0.0.1:9"


@dataclass
class SecretRegistry:
    values: set[str] = field(default_factory=lambda: {WRITE_KEY, TOKEN, SHARED_SECRET})

    def add(self, value: str) -> str:
        self.values.add(value)
        return value

    def leaked_in(self, text: str) -> list[str]:
        return [value for value in self.values if value and value in text]


@pytest.fixture
def secrets() -> SecretRegistry:
    return SecretRegistry()


@pytest.fixture(autouse=True)
def _isolate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secrets: SecretRegistry, capfd
) -> Iterator[None]:
    monkeypatch.setenv("CMDAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CMDAI_STATE_DIR", str(tmp_path / "state"))
    for name in list(os.environ):
        if name.startswith("CMDAI_") and name not in ("CMDAI_CONFIG_DIR", "CMDAI_STATE_DIR"):
            monkeypatch.delenv(name)
    # Each test starts with no secret known to `redact`: one registered by an earlier
    # test would otherwise be scrubbed from this test's output and hide a leak or a bug.
    monkeypatch.setattr(redact, "_known", set())
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    # Write keys are checked on Segment's CDN: never the real one from a test. Port 9
    # on loopback refuses at once; tests that want a CDN point this at a stand-in.
    monkeypatch.setenv("CMDAI_CDN_HOST", CLOSED_CDN)
    yield
    captured = capfd.readouterr()
    leaked = secrets.leaked_in(captured.out + captured.err)
    assert not leaked, f"secret(s) leaked into captured output: {[redact.mask(v) for v in leaked]}"


@dataclass
class Cli:
    """Runs `cmdai` in-process and fails the test if any output shows a secret."""

    secrets: SecretRegistry
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None):
        result = self.runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)
        leaked = self.secrets.leaked_in(result.stdout + result.stderr)
        assert not leaked, f"cmdai {' '.join(args)} printed a secret"
        return result


@pytest.fixture
def cli(secrets: SecretRegistry) -> Cli:
    return Cli(secrets)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "config.toml"
