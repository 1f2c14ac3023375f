"""`cmdai connect` and the global options, through CliRunner and a real terminal."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time

import pytest

from cmdai_cli import profile
from cmdai_cli.errors import ExitCode

from .conftest import WRITE_KEY


def stored(config_path):
    return profile.Store(config_path).read_raw()


def test_connect_stores_key_and_prints_it_masked(cli, config_path):
    result = cli("connect", "--write-key", WRITE_KEY, "--region", "eu")
    assert result.exit_code == 0, result.output
    assert "wk_T****" in result.stdout
    assert "https://events.eu1.segmentapis.com" in result.stdout
    assert stored(config_path)["profiles"]["default"] == {"write_key": WRITE_KEY, "region": "eu"}


def test_connect_json_before_or_after_the_command(cli, config_path):
    for args in (
        ["--json", "connect", "--write-key", WRITE_KEY],
        ["connect", "--write-key", WRITE_KEY, "--json"],
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert '"write_key": "wk_T****"' in result.stdout
        assert result.stdout.count("\n") == 1


def test_connect_reads_key_from_stdin(cli, config_path):
    result = cli("connect", "--write-key", "-", input=WRITE_KEY + "\r\n")
    assert result.exit_code == 0, result.output
    assert stored(config_path)["profiles"]["default"]["write_key"] == WRITE_KEY


def test_connect_without_key_and_without_terminal_is_a_usage_error(cli, config_path):
    result = cli("connect")
    assert result.exit_code == ExitCode.USAGE
    assert "no write key given" in result.stderr
    assert not config_path.exists()


def test_connect_uses_env_key_without_terminal(cli, config_path):
    result = cli("connect", env={"CMDAI_WRITE_KEY": WRITE_KEY})
    assert result.exit_code == 0, result.output
    assert stored(config_path)["profiles"]["default"]["write_key"] == WRITE_KEY


def test_connect_to_named_profile_keeps_others(cli, config_path):
    assert cli("connect", "--write-key", WRITE_KEY).exit_code == 0
    assert cli("-p", "staging", "connect", "--write-key", "wk_OTHER_abcdefghij").exit_code == 0
    profiles = stored(config_path)["profiles"]
    assert profiles["default"]["write_key"] == WRITE_KEY
    assert profiles["staging"]["write_key"] == "wk_OTHER_abcdefghij"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--write-key", "has space in it"], "whitespace"),
        (["--write-key", "tiny"], "8 to 200"),
        (["--write-key", WRITE_KEY, "--region", "mars"], "region 'mars'"),
        (["--write-key", WRITE_KEY, "--host", "http://example.com"], "must use https"),
    ],
)
def test_connect_rejects_bad_input_without_writing(cli, config_path, args, message):
    result = cli("connect", *args)
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert not config_path.exists()


def test_bad_profile_name_is_refused(cli, config_path):
    result = cli("-p", "../x", "connect", "--write-key", WRITE_KEY)
    assert result.exit_code == ExitCode.USAGE
    assert "profile name '../x' is not allowed" in result.stderr


def test_corrupt_file_is_a_config_error_and_untouched(cli, config_path):
    config_path.parent.mkdir(parents=True)
    config_path.write_text("[profiles.default\n")
    result = cli("connect", "--write-key", WRITE_KEY)
    assert result.exit_code == ExitCode.CONFIG
    assert str(config_path) in result.stderr and "line 1" in result.stderr
    assert config_path.read_text() == "[profiles.default\n"


def test_debug_shows_the_traceback(cli, config_path):
    config_path.parent.mkdir(parents=True)
    config_path.write_text("[profiles.default\n")
    quiet = cli("profile", "show")
    loud = cli("--debug", "profile", "show")
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and loud.exit_code == ExitCode.CONFIG


def test_version_and_short_help(cli):
    assert cli("--version").stdout.startswith("cmdai ")
    assert cli("connect", "--version").stdout.startswith("cmdai ")
    result = cli("connect", "-h")
    assert result.exit_code == 0 and "--write-key" in result.stdout


def test_no_color_output_has_no_escape_codes(cli, config_path):
    cli("connect", "--write-key", WRITE_KEY)
    result = cli("profile", "show")
    assert "\x1b[" not in result.stdout


def test_secret_guard_notices_a_leak(secrets):
    assert secrets.leaked_in(f"key={WRITE_KEY}") == [WRITE_KEY]
    assert secrets.leaked_in("key=wk_T****") == []


@pytest.mark.skipif(not hasattr(pty, "fork"), reason="needs a pseudo-terminal")
def test_prompts_without_echo_on_a_terminal(tmp_path):
    exe = shutil.which("cmdai", path=os.path.dirname(sys.executable))
    assert exe is not None
    assert exe, "the installed cmdai script"
    env = {**os.environ, "CMDAI_CONFIG_DIR": str(tmp_path / "cfg"), "NO_COLOR": "1"}
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(exe, [exe, "connect"], env)
    seen = b""
    deadline = time.monotonic() + 20
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        # The space after the colon is written once echo is off; input sent earlier is flushed.
        if not sent and b"Write key: " in seen:
            os.write(fd, (WRITE_KEY + "\n").encode())
            sent = True
    if not sent or time.monotonic() >= deadline:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert WRITE_KEY.encode() not in seen
    assert b"wk_T****" in seen
    text = (tmp_path / "cfg" / "config.toml").read_text()
    assert WRITE_KEY in text


def test_installed_script_runs_as_a_subprocess(tmp_path):
    exe = shutil.which("cmdai", path=os.path.dirname(sys.executable))
    assert exe is not None
    env = {**os.environ, "CMDAI_CONFIG_DIR": str(tmp_path / "cfg"), "NO_COLOR": "1"}
    done = subprocess.run(
        [exe, "connect", "--write-key", "-", "--json"],
        input=WRITE_KEY + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"write_key": "wk_T****"' in done.stdout
    assert WRITE_KEY not in done.stdout + done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "cmdai_cli", "connect", "--write-key", "x y z 1234"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == ExitCode.USAGE
    assert bad.stderr.strip() == "cmdai: error: the write key contains whitespace"


@pytest.mark.skipif(not hasattr(pty, "fork"), reason="needs a pseudo-terminal")
def test_environment_is_read_before_a_terminal_is_prompted(tmp_path):
    # Order: flag, `-` (stdin), $CMDAI_WRITE_KEY, then the prompt.
    exe = shutil.which("cmdai", path=os.path.dirname(sys.executable))
    assert exe, "the installed cmdai script"
    env = {
        **os.environ,
        "CMDAI_CONFIG_DIR": str(tmp_path / "cfg"),
        "NO_COLOR": "1",
        "CMDAI_WRITE_KEY": WRITE_KEY,
    }
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(exe, [exe, "connect"], env)
    seen = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and b"Write key" not in seen:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    if b"Write key" in seen or time.monotonic() >= deadline:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"Write key" not in seen, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"wk_T****" in seen
    assert WRITE_KEY in (tmp_path / "cfg" / "config.toml").read_text()


def test_write_key_help_names_the_variable(cli):
    assert "$CMDAI_WRITE_KEY" in cli("connect", "--help").stdout
