"""`cmdai profile list | show | use | delete | path`."""

from __future__ import annotations

import json

import pytest

from cmdai_cli.errors import ExitCode

from .conftest import WRITE_KEY


def test_path_follows_config_dir(cli, config_path):
    assert cli("profile", "path").stdout.strip() == str(config_path)
    assert json.loads(cli("profile", "path", "--json").stdout) == {"path": str(config_path)}


def test_list_use_delete(cli, config_path):
    cli("connect", "--write-key", WRITE_KEY)
    cli("-p", "work", "connect", "--write-key", WRITE_KEY)
    assert cli("profile", "list").stdout == "* default\n  work\n"
    assert cli("profile", "use", "work").exit_code == 0
    data = json.loads(cli("profile", "list", "--json").stdout)
    assert data["active"] == "work"
    assert [p["name"] for p in data["profiles"] if p["default"]] == ["work"]
    assert cli("-p", "default", "profile", "list").stdout == "* default\n  work\n"
    assert cli("profile", "delete", "work").exit_code == 0
    assert cli("profile", "list").stdout == "* default\n"


def test_unknown_profile_is_a_config_error(cli, config_path):
    for args in (["use", "ghost"], ["delete", "ghost"], ["show", "ghost"]):
        result = cli("profile", *args)
        assert result.exit_code == ExitCode.CONFIG, args
        assert "no profile named 'ghost'" in result.stderr


def test_show_masks_every_secret_and_names_sources(cli, config_path):
    cli("connect", "--write-key", WRITE_KEY)
    result = cli(
        "profile",
        "show",
        "--json",
        env={"CMDAI_PUBLIC_API_TOKEN": "sgp_TESTTOKEN_0123456789abcdef", "CMDAI_ORG_ID": "org1"},
    )
    data = json.loads(result.stdout)
    assert data["settings"]["write_key"] == "wk_T****"
    assert data["settings"]["public_api_token"] == "sgp_****"
    assert data["sources"]["write_key"] == "profile"
    assert data["sources"]["public_api_token"] == "env"
    assert data["settings"]["org_id"] == "org1"
    table = cli("profile", "show").stdout
    assert "wk_T****" in table and "write_key" in table


def test_list_with_no_file(cli):
    result = cli("profile", "list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No profiles yet" in result.stderr


def test_a_profile_that_does_not_exist_is_an_error_with_a_suggestion(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("connect", "-p", "staging", "--write-key", WRITE_KEY, "--no-verify").exit_code == 0
    typo = cli("-p", "stagin", "send-test")
    assert typo.exit_code == 3
    assert "no profile named 'stagin'" in typo.stderr and "did you mean 'staging'?" in typo.stderr
    shown = cli("-p", "nosuch", "profile", "show")
    assert shown.exit_code == 3 and shown.stdout == ""
    monkeypatch.setenv("CMDAI_PROFILE", "nosuch")
    listed = cli("profile", "list")
    assert listed.exit_code == 3 and "profiles in the file: staging" in listed.stderr
    # Where a command creates the profile, naming a new one is how it is done.
    monkeypatch.delenv("CMDAI_PROFILE")
    made = cli("-p", "prod", "connect", "--write-key", WRITE_KEY, "--no-verify")
    assert made.exit_code == 0, made.stderr
    assert cli("-p", "prod", "profile", "show").exit_code == 0
