"""docs/ci.md: its GitHub Actions workflows, run step by step on this machine.

Each `run:` step goes through bash as Actions runs it (`-e -o pipefail`), in order, with
the job's `env:` and what earlier steps appended to `$GITHUB_ENV`. `uses:` steps and
"Install cmdai" are what the runner does before (cmdai is installed here already); "Run
the app's tests" is played by a small app sending through segment-analytics-python.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "ci.md"

APP = """
import os, sys
from segment.analytics import Client

errors = []
sdk = Client("ci-local-write-key", host=os.environ["SEGMENT_HOST"], upload_interval=0.05,
             on_error=lambda e, b: errors.append(e))
traits = {"plan": "growth", "role": "admin"}
if sys.argv[1:] == ["--forget-a-trait"]:
    del traits["role"]
sdk.identify("ci-user-1", traits)
sdk.track("ci-user-1", "Invoice Sent", {"amount": 120})
# Command AI's events, as an app forwards them from addEventSubscriber.
sdk.track("ci-user-1", "Opened", {"type": "opened", "trigger": "keyboard"})
sdk.flush()
sdk.join()
sys.exit(1 if errors else 0)
"""


@dataclass
class Step:
    name: str
    run: str | None
    uses: str | None


def blocks(kind: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{kind}\n(.*?)^```", text, flags=re.S | re.M)


def job_env(workflow: str) -> dict[str, str]:
    found = re.search(r"^    env:\n((?:      .*\n|\s*#.*\n)+)", workflow, flags=re.M)
    env: dict[str, str] = {}
    for line in (found.group(1) if found else "").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(":")
            env[key.strip()] = value.strip()
    return env


def steps(workflow: str) -> list[Step]:
    """The steps of a workflow: name, run script (block or one line) and uses."""
    lines = workflow.splitlines()
    found: list[Step] = []
    indent = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        start = re.match(r"^(\s*)- (\w+): ?(.*)$", line)
        if start:
            found.append(Step(name="", run=None, uses=None))
            indent = len(start.group(1)) + 2
            key, value = start.group(2), start.group(3)
        else:
            field = re.match(r"^(\s*)(\w+): ?(.*)$", line)
            if not found or not field or len(field.group(1)) != indent:
                continue
            key, value = field.group(2), field.group(3)
        if key == "run" and value == "|":
            body = []
            while index < len(lines) and (
                not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
            ):
                body.append(lines[index])
                index += 1
            value = textwrap.dedent("\n".join(body)) + "\n"
        if key in ("name", "run", "uses"):
            setattr(found[-1], key, value)
    return found


def run_workflow(
    workflow: str, work: Path, app_args: list[str], edits: dict[str, str] | None = None
) -> list[tuple[str, int, str]]:
    """Every step in order; (name, exit code, output) for each that ran a script.

    `edits` replaces text in the scripts (a failing check need not wait its full time).
    """
    (work / "app.py").write_text(APP)
    github_env = work / "github.env"
    github_env.touch()
    env = {
        **os.environ,
        **job_env(workflow),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
        "GITHUB_ENV": str(github_env),
    }
    results = []
    for step in steps(workflow):
        if step.run is None:
            assert step.uses and step.uses.startswith("actions/"), step
            continue
        if step.name == "Install cmdai":
            assert step.run.strip() == "pip install cmdai"
            continue
        script = step.run
        for old, new in (edits or {}).items():
            script = script.replace(old, new)
        if step.name == "Run the app's tests":
            script = f'"{sys.executable}" app.py ' + " ".join(app_args)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
        )
        results.append((step.name, done.returncode, done.stdout + done.stderr))
        for line in github_env.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    return results


def stop_collector(work: Path) -> None:
    pid_file = work / "collector.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def app_workflow(tmp_path: Path):
    with_app, _ = blocks("yaml")
    [expectations] = blocks("toml")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "segment-expectations.toml").write_text(expectations)
    yield with_app
    stop_collector(tmp_path)


def test_the_workflow_with_an_app_passes(app_workflow: str, tmp_path: Path) -> None:
    results = run_workflow(app_workflow, tmp_path, [])
    names = [name for name, _, _ in results]
    assert names == [
        "Start the collector",
        "Run the app's tests",
        "Check the events",
        "Stop the collector",
    ]
    assert all(code == 0 for _, code, _ in results), results
    check = results[2][2]
    assert check.count("PASS  ") == 5 and "All 5 checks hold" in check
    stored = (tmp_path / "segment-events.ndjson").read_text().splitlines()
    assert len(stored) == 3


def test_the_workflow_with_an_app_fails_loudly(app_workflow: str, tmp_path: Path) -> None:
    assert "--within 30" in app_workflow
    edits = {"--within 30": "--within 0.5"}
    results = run_workflow(app_workflow, tmp_path, ["--forget-a-trait"], edits)
    codes = {name: code for name, code, _ in results}
    assert codes["Check the events"] == 1 and codes["Stop the collector"] == 0
    check = dict((name, out) for name, _, out in results)["Check the events"]
    assert "FAIL  identify from ci-user-1" in check
    assert 'traits.role missing (expected "admin")' in check


def test_the_workflow_with_send_test_alone(tmp_path: Path) -> None:
    _, send_test_only = blocks("yaml")
    try:
        results = run_workflow(send_test_only, tmp_path, [])
    finally:
        stop_collector(tmp_path)
    assert [name for name, _, _ in results] == [
        "Start the collector",
        "Send a test event",
        "Check it arrived",
    ]
    assert all(code == 0 for _, code, _ in results), results
    assert "All 3 checks hold" in results[2][2]
