"""The profile store and settings resolution (core, no CLI)."""

from __future__ import annotations

import multiprocessing
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli import profile, settings_file
from cmdai_cli.errors import ConfigError, UsageError

KEY = "wk_TESTSECRET_0123456789abcdef"


def store_at(path: Path) -> profile.Store:
    return profile.Store(path)


def write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


# ------------------------------------------------------------------ precedence


def test_flag_beats_env_beats_profile_beats_default(config_path, monkeypatch):
    store = store_at(config_path)
    profile.save_profile(store, "default", {"org_id": "from-profile", "region": "eu"})

    resolved = profile.resolve(None, {}, store=store)
    assert (resolved.get("org_id"), resolved.sources["org_id"]) == ("from-profile", "profile")
    assert (resolved.get("region"), resolved.sources["region"]) == ("eu", "profile")

    monkeypatch.setenv("CMDAI_ORG_ID", "from-env")
    resolved = profile.resolve(None, {}, store=store)
    assert (resolved.get("org_id"), resolved.sources["org_id"]) == ("from-env", "env")

    resolved = profile.resolve(None, {"org_id": "from-flag"}, store=store)
    assert (resolved.get("org_id"), resolved.sources["org_id"]) == ("from-flag", "flag")


def test_default_applies_when_nothing_is_set(config_path):
    resolved = profile.resolve(None, {}, store=store_at(config_path))
    assert (resolved.get("region"), resolved.sources["region"]) == ("us", "default")
    assert resolved.get("segment_host") == "https://api.segment.io"
    assert resolved.get("write_key") is None and resolved.sources["write_key"] == "unset"
    assert resolved.exists is False


def test_region_picks_host_unless_host_is_set(config_path, monkeypatch):
    store = store_at(config_path)
    monkeypatch.setenv("CMDAI_REGION", "eu")
    assert profile.resolve(None, {}, store=store).get("segment_host") == (
        "https://events.eu1.segmentapis.com"
    )
    monkeypatch.setenv("CMDAI_SEGMENT_HOST", "http://127.0.0.1:9")
    resolved = profile.resolve(None, {}, store=store)
    assert (resolved.get("segment_host"), resolved.sources["segment_host"]) == (
        "http://127.0.0.1:9",
        "env",
    )


def test_secret_env_var_resolves(config_path, monkeypatch):
    monkeypatch.setenv("CMDAI_WRITE_KEY", KEY)
    resolved = profile.resolve(None, {}, store=store_at(config_path))
    assert resolved.get("write_key") == KEY
    assert resolved.masked()["write_key"] == "wk_T****"


def test_bad_env_value_names_the_variable(config_path, monkeypatch):
    monkeypatch.setenv("CMDAI_REGION", "mars")
    with pytest.raises(ConfigError, match=r"\$CMDAI_REGION"):
        profile.resolve(None, {}, store=store_at(config_path))


def test_active_profile_order(config_path, monkeypatch):
    store = store_at(config_path)
    profile.save_profile(store, "work", {"org_id": "w"})
    profile.save_profile(store, "home", {"org_id": "h"})
    assert profile.active_name(None, store.load()) == "default"
    profile.use_profile(store, "work")
    assert profile.active_name(None, store.load()) == "work"
    monkeypatch.setenv("CMDAI_PROFILE", "home")
    assert profile.active_name(None, store.load()) == "home"
    assert profile.active_name("other", store.load()) == "other"
    assert profile.resolve(None, {}, store=store).get("org_id") == "h"


def test_require_names_flag_and_env(config_path):
    resolved = profile.resolve(None, {}, store=store_at(config_path))
    with pytest.raises(ConfigError, match=r"give --write-key, \$CMDAI_WRITE_KEY, or store"):
        resolved.require("write_key", flag="--write-key")
    with pytest.raises(ConfigError, match=r"give \$CMDAI_WRITE_KEY, or store"):
        resolved.require("write_key")


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("abc def12345", "whitespace"),
        ("abc\tdef12345", "whitespace"),
        ("abc\x01def12345", "control"),
        ("abcdéf12345", "printable ASCII"),
        ("short", "expected 8 to 200"),
        ("x" * 201, "expected 8 to 200"),
    ],
)
def test_bad_write_keys(key, reason):
    with pytest.raises(UsageError, match=reason):
        profile.check_write_key(key)


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "a b", "x" * 64])
def test_bad_profile_names(name, config_path):
    with pytest.raises(UsageError):
        profile.save_profile(store_at(config_path), name, {"org_id": "x"})


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.segment.io", True),
        ("http://127.0.0.1:8765", True),
        ("http://localhost:1", True),
        ("http://[::1]:1", True),
        ("http://api.segment.io", False),
        ("ftp://x", False),
        ("https://user:pw@host", False),
        ("not a url", False),
    ],
)
def test_host_rules(url, ok):
    if ok:
        assert profile.check_url(url) == url
    else:
        with pytest.raises(UsageError):
            profile.check_url(url)


# ------------------------------------------------------------------ the file


def test_writes_are_private_and_keep_other_profiles(config_path):
    write(
        config_path,
        'default_profile = "a"\n[profiles.a]\norg_id = "A"\nregion = "eu"\n'
        '[profiles.b]\norg_id = "B"\n',
    )
    os.chmod(config_path.parent, 0o755)
    store = store_at(config_path)
    profile.save_profile(store, "c", {"write_key": KEY})
    raw = store.read_raw()
    assert raw["profiles"]["a"] == {"org_id": "A", "region": "eu"}
    assert raw["profiles"]["b"] == {"org_id": "B"}
    assert raw["default_profile"] == "a"
    assert raw["profiles"]["c"] == {"write_key": KEY}
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700


def test_new_directory_is_0700(config_path):
    profile.save_profile(store_at(config_path), "default", {"org_id": "x"})
    assert stat.S_IMODE(config_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_loose_file_is_warned_on_read_and_tightened_on_write(config_path, caplog):
    write(config_path, '[profiles.default]\norg_id = "x"\n', mode=0o644)
    store = store_at(config_path)
    with caplog.at_level("WARNING", logger="cmdai"):
        store.load()
        store.load()
    assert caplog.text.count("permissions 644") == 1  # once a run, however often it is read
    profile.save_profile(store, "default", {"region": "eu"})
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_interrupted_write_leaves_old_file(config_path, monkeypatch):
    store = store_at(config_path)
    profile.save_profile(store, "default", {"org_id": "old"})
    before = config_path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    # A failed write is the user's machine's doing: a ConfigError (exit 3), no longer a
    # bare OSError that ended as an internal error.
    with pytest.raises(ConfigError, match="disk full"):
        profile.save_profile(store, "default", {"org_id": "new"})
    assert config_path.read_bytes() == before
    leftovers = [p.name for p in config_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[profiles.default\n", r"invalid TOML.*line 1"),
        ('[profiles.default]\nregion = "mars"\n', r"profiles\.default\.region"),
        ("[profiles.default]\norg_id = 5\n", r"profiles\.default\.org_id"),
        ('[profiles.default]\ncolour = "red"\n', r"profiles\.default\.colour: unknown key"),
        ('surprise = "x"\n', r"surprise: unknown key"),
        ('[profiles."a/b"]\norg_id = "x"\n', r"invalid profile name"),
        ('[profiles.default]\nsegment_host = "http://example.com"\n', r"must use https"),
    ],
)
def test_corrupt_file_is_reported_and_untouched(config_path, text, expected):
    write(config_path, text)
    store = store_at(config_path)
    with pytest.raises(ConfigError, match=expected) as info:
        profile.save_profile(store, "default", {"org_id": "new"})
    assert str(config_path) in str(info.value)
    assert config_path.read_text() == text


def test_directory_in_place_of_file(config_path):
    config_path.mkdir(parents=True)
    with pytest.raises(ConfigError, match="is a directory"):
        store_at(config_path).load()
    assert config_path.is_dir()


def test_unreadable_file(config_path, monkeypatch):
    write(config_path, '[profiles.default]\norg_id = "x"\n')
    real = settings_file.read

    def denied(path: Path, **options: Any) -> bytes:
        if path == config_path:
            raise PermissionError(13, "Permission denied")
        return real(path, **options)

    # Root reads any file, so the refusal is simulated at the one call that reads it.
    monkeypatch.setattr(settings_file, "read", denied)
    with pytest.raises(ConfigError, match="permission denied"):
        store_at(config_path).load()


def test_delete_and_use_unknown_profile(config_path):
    store = store_at(config_path)
    profile.save_profile(store, "a", {"org_id": "x"})
    with pytest.raises(ConfigError, match="no profile named 'nope'"):
        profile.delete_profile(store, "nope")
    with pytest.raises(ConfigError, match="no profile named 'nope'"):
        profile.use_profile(store, "nope")
    profile.use_profile(store, "a")
    profile.delete_profile(store, "a")
    assert store.read_raw() == {"profiles": {}}


def _writer(path: str, index: int, rounds: int) -> None:
    store = profile.Store(Path(path))
    for round_ in range(rounds):
        profile.save_profile(store, f"p{index}", {"org_id": f"org-{index}-{round_}"})


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks are POSIX here")
def test_concurrent_writers_do_not_lose_or_corrupt(config_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(config_path), i, 15)) for i in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    profiles = profile.Store(config_path).load().profiles
    assert {name: p.org_id for name, p in profiles.items()} == {
        f"p{i}": f"org-{i}-14" for i in range(4)
    }


def test_base_urls_lose_a_trailing_slash_but_the_webhook_url_keeps_it(config_path):
    store = store_at(config_path)
    saved = profile.save_profile(
        store,
        "default",
        {"segment_host": "https://seg.example/", "webhook_url": "https://hooks.example/in/"},
    )
    assert saved.segment_host == "https://seg.example"
    assert saved.webhook_url == "https://hooks.example/in/"


def test_a_default_profile_with_no_table_is_warned_about(cli, tmp_path) -> None:
    from cmdai_cli.profile import Store

    path = Store().path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('default_profile = "prod"\n\n[profiles.default]\nregion = "us"\n')
    result = cli("profile", "show")
    assert "default_profile 'prod' names no [profiles.prod] table" in result.stderr
    assert "names no" not in cli("profile", "show", "-p", "default").stderr
