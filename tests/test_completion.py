"""Tab completion: the scripts in completions/, and the protocol driven in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from cmdai_cli import catalogue, profile

ROOT = Path(__file__).resolve().parent.parent


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "scripts" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cmdai(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmdai_cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def bash(line: str) -> list[str]:
    """Candidates bash would get for `line`, the word under the cursor being the last."""
    words = line.split(" ")
    done = run_cmdai(
        {
            "_CMDAI_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        }
    )
    assert done.returncode == 0, done.stderr
    return [item for item in done.stdout.split("\n") if item]


def zsh(line: str) -> str:
    done = run_cmdai({"_CMDAI_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line})
    assert done.returncode == 0, done.stderr
    return done.stdout


def fish(line: str) -> list[tuple[str, str]]:
    done = run_cmdai(
        {
            "_CMDAI_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": line,
        }
    )
    assert done.returncode == 0, done.stderr
    rows = []
    for item in done.stdout.split("\n"):
        if item:
            value, _, about = item.partition("\t")
            rows.append((value, about))
    return rows


@pytest.fixture
def profiles() -> list[str]:
    store = profile.Store()
    for name in ("staging", "prod-eu", "ci"):
        profile.save_profile(store, name, {"region": "eu"})
    return ["staging", "prod-eu", "ci"]


# ---------------------------------------------------------------------- generated scripts


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_script_is_current(shell: str) -> None:
    gen = generator()
    path = ROOT / "completions" / gen.COMPLETION_FILES[shell]
    assert path.exists(), f"{path} is missing: run python scripts/generate.py"
    assert path.read_text(encoding="utf-8") == gen.render_completion(shell), (
        f"{path.relative_to(ROOT)} is stale: run python scripts/generate.py"
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_the_committed_script(cli, shell: str) -> None:
    result = cli("completion", shell)
    assert result.exit_code == 0
    path = ROOT / "completions" / generator().COMPLETION_FILES[shell]
    assert result.stdout == path.read_text(encoding="utf-8")
    assert "_CMDAI_COMPLETE=complete_" + shell in result.stdout


def test_completion_json_and_unknown_shell(cli) -> None:
    result = cli("completion", "zsh", "--json")
    assert result.exit_code == 0
    assert '"shell": "zsh"' in result.stdout
    assert "#compdef cmdai" in result.stdout
    bad = cli("completion", "tcsh")
    assert bad.exit_code == 2
    assert "tcsh" in bad.stderr


# ---------------------------------------------------------------------- the protocol


def test_commands_are_completed() -> None:
    found = bash("cmdai ")
    for name in ("connect", "profile", "send-test", "listen", "doctor", "completion", "replay"):
        assert name in found
    assert bash("cmdai do") == ["doctor"]
    assert set(bash("cmdai profile ")) >= {"list", "show", "use", "delete", "path"}


def test_options_are_completed() -> None:
    found = bash("cmdai send-test --")
    for option in ("--event", "--user-id", "--local", "--profile", "--json", "--help"):
        assert option in found
    assert set(bash("cmdai doctor --")) >= {"--send-test", "--timeout", "--host", "--json"}
    assert bash("cmdai doctor --send") == ["--send-test"]


def test_profile_names_are_completed(profiles: list[str]) -> None:
    assert sorted(bash("cmdai --profile ")) == sorted(profiles)
    assert bash("cmdai doctor -p st") == ["staging"]
    assert bash("cmdai profile use pr") == ["prod-eu"]
    assert [value for value, _ in fish("cmdai send-test --profile c")] == ["ci"]


def test_event_names_are_completed_for_send_test() -> None:
    names = [spec.name for spec in catalogue.events()]
    assert "Nudge Shown" in names
    assert bash("cmdai send-test --event ") == [
        name.replace(" ", "\\ ") for name in dict.fromkeys(names)
    ]
    nudges = [name for name in names if name.startswith("Nudge")]
    # bash inserts candidates as they are: names with spaces come back escaped.
    escaped = [name.replace(" ", "\\ ") for name in nudges]
    assert bash("cmdai send-test --event Nudge") == escaped
    # Lower case completes properties.type values, which hold no spaces.
    assert "nudge_shown" in bash("cmdai send-test --event nudge_")
    assert all(" " not in value for value in bash("cmdai send-test --event n"))
    described = dict(fish("cmdai send-test --event Nudge"))
    assert described["Nudge Shown"] == "nudge_shown"
    assert '"Nudge Shown":"nudge_shown"' in zsh("cmdai send-test --event Nudge")


def test_replay_targets_are_completed() -> None:
    assert bash("cmdai replay --to ") == ["segment", "webhook", "bulk-identify"]
    assert bash("cmdai replay --to b") == ["bulk-identify"]


def test_shell_names_are_completed() -> None:
    assert bash("cmdai completion ") == ["bash", "zsh", "fish"]


def test_zsh_and_fish_describe_commands() -> None:
    assert '"doctor":"Check the profile' in zsh("cmdai do")
    rows = dict(fish("cmdai "))
    assert rows["completion"].startswith("Print the Tab-completion script")


def test_bash_script_completes_in_bash(tmp_path: Path, profiles: list[str]) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    shim = tmp_path / "bin" / "cmdai"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cmdai_cli "$@"\n')
    shim.chmod(0o755)
    script = ROOT / "completions" / "cmdai.bash"
    program = (
        f"source '{script}'\n"
        "COMP_WORDS=(cmdai --profile st); COMP_CWORD=2\n"
        "_cmdai_completion cmdai\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
        "COMP_WORDS=(cmdai doc); COMP_CWORD=1\n"
        "_cmdai_completion cmdai\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        env={**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["staging", "doctor"]


def shim_dir(tmp_path: Path) -> Path:
    shim = tmp_path / "bin" / "cmdai"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cmdai_cli "$@"\n')
    shim.chmod(0o755)
    return shim.parent


def need(program: str) -> None:
    if shutil.which(program) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is not installed (.ci/run installs it)")
        pytest.skip(f"{program} is not installed")


def test_bash_inserts_names_with_spaces_as_one_word(tmp_path: Path) -> None:
    need("bash")
    script = ROOT / "completions" / "cmdai.bash"
    # What bash does with the candidates: insert the only one (Survey), insert the
    # common prefix of several and list them on the second Tab (Nudge); each must
    # then read back as the one word it names.
    program = (
        f"source '{script}'\n"
        "COMP_WORDS=(cmdai send-test --event Survey); COMP_CWORD=3\n"
        "_cmdai_completion cmdai\n"
        'eval "set -- cmdai send-test --event ${COMPREPLY[0]}"\n'
        'echo "only:$#:$4"\n'
        "COMP_WORDS=(cmdai send-test --event Nudge); COMP_CWORD=3\n"
        "_cmdai_completion cmdai\n"
        'echo "several:${#COMPREPLY[@]}"\n'
        "COMP_WORDS=(cmdai send-test --event 'Nudge\\ '); COMP_CWORD=3\n"
        "_cmdai_completion cmdai\n"
        'echo "again:${#COMPREPLY[@]}"\n'
        'eval "set -- ${COMPREPLY[1]}"\n'
        'echo "second:$#:$1"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        env={**os.environ, "PATH": f"{shim_dir(tmp_path)}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "only:4:Survey Response",
        "several:5",
        "again:5",
        "second:1:Nudge Clicked",
    ]


def test_zsh_completes_on_the_first_tab(tmp_path: Path) -> None:
    """Installed as the help says (a file in fpath, then compinit), in a real zsh."""
    need("zsh")
    need("tmux")
    zfunc = tmp_path / "zfunc"
    zfunc.mkdir()
    (zfunc / "_cmdai").write_text((ROOT / "completions" / "_cmdai").read_text())
    (tmp_path / ".zshrc").write_text(
        f"fpath=({zfunc} $fpath)\nautoload -Uz compinit\ncompinit -u -d {tmp_path}/zcomp\n"
        "PROMPT='READY> '\n"
    )
    socket = f"cmdai-{os.getpid()}"
    env = {
        **os.environ,
        "ZDOTDIR": str(tmp_path),
        "PATH": f"{shim_dir(tmp_path)}{os.pathsep}{os.environ['PATH']}",
    }

    def tmux(*args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", socket, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen_shows(text: str) -> bool:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if text in tmux("capture-pane", "-p", "-t", "t"):
                return True
            time.sleep(0.05)
        return False

    tmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "100", "-y", "20", "zsh -i")
    try:
        assert screen_shows("READY>"), tmux("capture-pane", "-p", "-t", "t")
        tmux("send-keys", "-t", "t", "cmdai complet", "Tab")
        assert screen_shows("READY> cmdai completion"), tmux("capture-pane", "-p", "-t", "t")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], env=env, check=False)
