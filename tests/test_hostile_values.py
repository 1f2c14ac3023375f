"""Values a user or the machine can get wrong: refused with the documented exit code and
one line, and nothing invalid stored."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cmdai_cli.errors import UsageError
from cmdai_cli.values import check_url

from .conftest import WRITE_KEY


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://api.segment.io:99999", "port"),
        ("https://api.segment.io:0", "port"),
        ("https://api.segment.io:http", "port"),
        ("https://api .segment.io", "spaces"),
        ("https://api.segment.io\n", None),  # stripped: fine
        ("https://-bad-.example", "not a host"),
        ("https://a..b", "not a host"),
        ("https://300.1.1.1", "not a host"),
        ("https://api.segment.io/?x=1", "query"),
        ("ftp://api.segment.io", "not an http"),
        ("http://example.com", "https"),
        ("https://user:pw@api.segment.io", "credentials"),
    ],
)
def test_urls_are_checked_whole(url: str, why: str | None) -> None:
    if why is None:
        assert check_url(url) == url.strip()
        return
    with pytest.raises(UsageError, match=why):
        check_url(url)


def test_urls_that_are_fine() -> None:
    assert check_url("https://api.segment.io:443/") == "https://api.segment.io:443"
    assert check_url("http://[::1]:8080") == "http://[::1]:8080"
    assert check_url("https://hooks.example.com/x?t=1", base=False).endswith("?t=1")


def test_connect_stores_nothing_for_a_port_out_of_range(cli) -> None:
    result = cli("connect", "--write-key", WRITE_KEY, "--host", "https://api.segment.io:99999")
    assert result.exit_code == 2
    assert "port" in result.stderr
    assert '"profiles": []' in cli("profile", "list", "--json").stdout


@pytest.mark.parametrize(
    "trigger",
    [
        "type = ",
        'type = "bogus"',
        "type = 'track'",
        'type = "track" and event = "a" or event = "b"',
    ],
)
def test_destination_configure_refuses_a_trigger_segment_cannot_read(cli, trigger: str) -> None:
    url = "https://hooks.example.com/cmdai"
    result = cli("destination", "configure", "--webhook-url", url, "--trigger", trigger)
    assert result.exit_code == 2, result.stderr
    assert "is not a trigger Segment accepts" in result.stderr
    shown = cli("destination", "show", "--json")
    assert '"webhook_url": null' in shown.stdout  # nothing was stored


def test_destination_configure_stores_a_good_trigger(cli) -> None:
    trigger = 'type = "track" and (event = "Opened" or match(event, "Nudge*"))'
    url = "https://hooks.example.com/cmdai"
    result = cli("destination", "configure", "--webhook-url", url, "--trigger", trigger)
    assert result.exit_code == 0, result.stderr
    assert trigger in cli("destination", "show", "--json").stdout.replace('\\"', '"')


def test_listen_refuses_an_empty_write_key(cli) -> None:
    result = cli("listen", "--port", "0", "--write-key", "")
    assert result.exit_code == 2
    assert "--write-key is empty" in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_replay_refuses_numbers_that_are_not_finite(cli, tmp_path: Path, value: str) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text('{"type": "track", "event": "x", "userId": "u"}\n')
    url = "http://127.0.0.1:9/hook"
    for flag in ("--rate", "--max-wait", "--backoff"):
        result = cli("replay", str(events), "--to", "webhook", "--url", url, flag, value)
        assert result.exit_code == 2, (flag, result.stderr)
        assert f"{flag} must be a finite number" in result.stderr


@pytest.mark.parametrize("under", ["/proc/cmdai-config", "{file}/config"])
def test_an_unwritable_config_directory_is_a_config_error(
    cli, monkeypatch, tmp_path: Path, under: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CMDAI_CONFIG_DIR", under.format(file=blocker))
    result = cli("connect", "--write-key", WRITE_KEY)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("cmdai: error: ")
    assert result.stderr.count("\n") == 1
    assert "internal error" not in result.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args", [["profile", "path"], ["map-payload", "-"], ["--help"], ["replay", "--help"]]
)
def test_stdout_on_a_full_disk_is_one_plain_line(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "CMDAI_CONFIG_DIR": str(tmp_path)}
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "cmdai_cli", *args],
            input=b'{"type":"identify","userId":"u"}\n' * 3000,
            stdout=full,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.decode() == "cmdai: error: No space left on device\n"


@pytest.mark.skipif(not hasattr(pty, "fork"), reason="needs a pseudo-terminal")
def test_no_color_means_no_bold_either(tmp_path: Path) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text('{"type":"identify","userId":"u1","traits":{"plan":"pro"}}\n')
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ["NO_COLOR"] = "1"
        os.execvp(sys.executable, [sys.executable, "-m", "cmdai_cli", "map-payload", str(events)])
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    assert b"userId" in seen
    assert b"\x1b[" not in seen
