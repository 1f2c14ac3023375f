"""docs/ci.md: its GitHub Actions workflows, run step by step on this machine.

Each `run:` step goes through bash as Actions runs it (`-e -o pipefail`), in order, with
the job's `env:` and what earlier steps appended to `$GITHUB_ENV`. `uses:` steps are what
the runner does before; "Install cmdai" installs the release's wheel (the one .ci/run
built, `$CMDAI_WHEEL`) as the docs write it, into an environment of its own whose `cmdai`
the later steps run; "Run the app's tests" is played by a small app sending through
segment-analytics-python.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from cmdai_cli import __version__

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ci.md"

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


@dataclass(frozen=True)
class Release:
    venv: Path
    wheel: Path


def run_workflow(
    workflow: str,
    work: Path,
    app_args: list[str],
    release: Release,
    edits: dict[str, str] | None = None,
) -> list[tuple[str, int, str]]:
    """Every step in order; (name, exit code, output) for each that ran a script.

    The steps run with `release.venv` first on PATH, where the install step puts the
    wheel. `edits` replaces text in the scripts (a failing check need not wait its
    full time).
    """
    (work / "app.py").write_text(APP)
    github_env = work / "github.env"
    github_env.touch()
    env = {
        **os.environ,
        **job_env(workflow),
        "PATH": str(release.venv / "bin") + os.pathsep + os.environ["PATH"],
        "GITHUB_ENV": str(github_env),
        "CMDAI_TEST_WHEEL": str(release.wheel),
    }
    results = []
    for step in steps(workflow):
        if step.run is None:
            assert step.uses and step.uses.startswith("actions/"), step
            continue
        if step.name == "Install cmdai":
            install_release(step.run, work, env)
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


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release's wheel: the one .ci/run built, else one built here."""
    built = os.environ.get("CMDAI_WHEEL")
    if built:
        return Path(built)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        timeout=120,
    )
    [found] = out.glob("cmdai-*.whl")
    return found


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Release:
    """A virtual environment that has cmdai's dependencies but not cmdai itself.

    It sees this environment's packages (by path, so that this environment's own cmdai,
    installed in development mode through a .pth file, stays out of it), so the docs'
    `pip install` of the wheel needs no index here; what it installs is the wheel, and
    its `cmdai` is what later steps run.
    """
    venv = tmp_path_factory.mktemp("release") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    [site_dir] = (venv / "lib").glob("python*/site-packages")
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site_dir / "cmdai-test-dependencies.pth").write_text("\n".join(ours) + "\n")
    return Release(venv, wheel)


def install_release(script: str, work: Path, env: dict[str, str]) -> None:
    """Run the docs' install step as written, with the wheel where the docs keep it."""
    found = re.fullmatch(r"pip install (\.github/(cmdai-[^/\s]+\.whl))", script.strip())
    assert found, script
    wheel_path = env["CMDAI_TEST_WHEEL"]
    assert Path(wheel_path).name == found.group(2), "docs/ci.md names another release"
    (work / ".github").mkdir(exist_ok=True)
    shutil.copy(wheel_path, work / found.group(1))
    # The environment already has the dependencies (.ci/run installs the wheel with
    # them in an empty one); pip's own settings make it take the wheel alone here.
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", script],
        cwd=work,
        env={**env, "PIP_NO_DEPS": "1", "PIP_FORCE_REINSTALL": "1", "PIP_QUIET": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bin_dir = Path(env["PATH"].split(os.pathsep)[0])
    version = subprocess.run(
        [str(bin_dir / "cmdai"), "--version"], env=env, capture_output=True, text=True
    )
    assert version.stdout.strip() == f"cmdai {__version__}", version


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


def test_the_workflow_with_an_app_passes(
    app_workflow: str, tmp_path: Path, release: Release
) -> None:
    results = run_workflow(app_workflow, tmp_path, [], release)
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


def test_the_workflow_with_an_app_fails_loudly(
    app_workflow: str, tmp_path: Path, release: Release
) -> None:
    assert "--within 30" in app_workflow
    edits = {"--within 30": "--within 0.5"}
    results = run_workflow(app_workflow, tmp_path, ["--forget-a-trait"], release, edits)
    codes = {name: code for name, code, _ in results}
    assert codes["Check the events"] == 1 and codes["Stop the collector"] == 0
    check = dict((name, out) for name, _, out in results)["Check the events"]
    assert "FAIL  identify from ci-user-1" in check
    assert 'traits.role missing (expected "admin")' in check


def test_the_workflow_with_send_test_alone(tmp_path: Path, release: Release) -> None:
    _, send_test_only = blocks("yaml")
    try:
        results = run_workflow(send_test_only, tmp_path, [], release)
    finally:
        stop_collector(tmp_path)
    assert [name for name, _, _ in results] == [
        "Start the collector",
        "Send a test event",
        "Check it arrived",
    ]
    assert all(code == 0 for _, code, _ in results), results
    sent = results[1][2]
    assert "NOT a Segment source's key" not in sent and "verified" in sent, sent
    assert "All 3 checks hold" in results[2][2]


DOC_PAGES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md"),
]
INSTALL = re.compile(r"(?:python -m )?pip install [^`&#\n]+")


def install_lines() -> list[tuple[str, str]]:
    found = []
    for page in DOC_PAGES:
        for match in INSTALL.finditer(page.read_text(encoding="utf-8")):
            found.append((page.name, match.group(0).strip()))
    return found


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Path:
    """A copy of the repository, with the release's wheel where the docs keep it."""
    work = tmp_path_factory.mktemp("workspace") / "cmdai"
    shutil.copytree(
        ROOT,
        work,
        ignore=shutil.ignore_patterns(".git", "node_modules", "__pycache__", ".*cache", "build"),
    )
    for place in (work, work / ".github"):
        place.mkdir(exist_ok=True)
        shutil.copy(release.wheel, place / release.wheel.name)
    return work


def test_the_docs_install_only_what_exists() -> None:
    """Nothing names a package index entry for cmdai: no index serves one."""
    lines = install_lines()
    assert len(lines) >= 8, lines
    for page, line in lines:
        assert not re.search(r"install '?cmdai[\[\s']", line + " "), (page, line)


@pytest.mark.parametrize("page,line", install_lines(), ids=lambda value: value)
def test_every_install_line_in_the_docs_resolves(
    page: str, line: str, workspace: Path, release: Release
) -> None:
    """Each `pip install` the docs write, run as written, with `--dry-run` added.

    (pip's own PIP_DRY_RUN would reach the pip that fills a build's isolated
    environment too, which then stays empty.)
    """
    command = line.replace("python -m pip", "pip") + " --dry-run"
    env = {
        **os.environ,
        "PATH": str(release.venv / "bin") + os.pathsep + os.environ["PATH"],
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", command],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (page, line, done.stdout + done.stderr)
