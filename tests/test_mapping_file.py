"""Mapping files (TOML with a top-level [mapping] table), and which mapping is in force."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmdai_cli.errors import DataError, ExitCode
from cmdai_cli.mapping.file import load_mapping_file, resolve_mapping
from cmdai_cli.mapping.webhook import map_webhook
from tests.mapping_samples import settings_with

EXAMPLE = """\
# what to send
[mapping]
userId = "$.userId"
"user_property.plan" = "$.properties.plan"
user_property_event = "$.event"
"""


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "mapping.toml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_the_issue_example_loads_and_maps(tmp_path: Path) -> None:
    parsed = load_mapping_file(write(tmp_path, EXAMPLE))
    assert parsed.table == {
        "userId": "$.userId",
        "user_property.plan": "$.properties.plan",
        "user_property_event": "$.event",
    }
    record, _ = map_webhook(
        {"type": "track", "userId": "u", "event": "Upgraded", "properties": {"plan": "pro"}},
        parsed,
    )
    assert record == {
        "userId": "u",
        "properties": {"Upgraded": True, "plan": "pro"},
        "ignored": None,
    }


def test_unquoted_dotted_keys_mean_the_dotted_field(tmp_path: Path) -> None:
    parsed = load_mapping_file(write(tmp_path, '[mapping]\nuser_property.plan = "$.traits.plan"\n'))
    assert parsed.table == {"user_property.plan": "$.traits.plan"}


@pytest.mark.parametrize("text", ["", "title = 'x'\n", "[mapping]\n"])
def test_no_or_empty_mapping_table_is_the_whole_event(tmp_path: Path, text: str) -> None:
    assert load_mapping_file(write(tmp_path, text)).whole_event


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[mapping]\nuserId = "$.userId"\nplan = $.properties.plan\n')
    with pytest.raises(DataError) as info:
        load_mapping_file(path)
    assert info.value.source == str(path)
    assert info.value.line == 3
    assert info.value.exit_code == ExitCode.DATA
    assert str(info.value).startswith(f"{path}:3: invalid TOML")


def test_a_non_string_path_names_the_file_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE + "seats = 3\n")
    with pytest.raises(DataError) as info:
        load_mapping_file(path)
    assert (info.value.source, info.value.line, info.value.field) == (str(path), 6, "seats")
    assert str(info.value) == (
        f"{path}:6 (seats): the source must be a string ('$.path' or a literal), not a number"
    )


def test_bad_path_syntax_names_the_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[mapping]\n"user_property.plan" = "$.properties..plan"\n')
    with pytest.raises(DataError) as info:
        load_mapping_file(path)
    assert (info.value.line, info.value.field) == (2, "user_property.plan")
    assert "bad path '$.properties..plan'" in str(info.value)


def test_mapping_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="must be a table") as info:
        load_mapping_file(write(tmp_path, 'mapping = "$."\n'))
    assert info.value.line == 1


def test_missing_directory_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such mapping file"):
        load_mapping_file(tmp_path / "absent.toml")
    with pytest.raises(DataError, match="is a directory"):
        load_mapping_file(tmp_path)
    with pytest.raises(DataError, match="not UTF-8"):
        load_mapping_file(write(tmp_path, b'[mapping]\nuserId = "\xff"\n'))


# ---------------------------------------------------------------- resolve_mapping


def test_the_mapping_file_wins_over_the_profile(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    resolved = resolve_mapping(path, settings_with(mapping={"userId": "$.anonymousId"}))
    assert resolved.table["userId"] == "$.userId"
    assert resolve_mapping(str(path), settings_with()).table == resolved.table


def test_without_a_file_the_profile_mapping_then_the_whole_event() -> None:
    resolved = resolve_mapping(None, settings_with(mapping={"userId": "$.anonymousId"}))
    assert resolved.table == {"userId": "$.anonymousId"}
    assert resolve_mapping(None, settings_with()).whole_event


def test_a_bad_profile_mapping_names_the_config_file_and_table() -> None:
    with pytest.raises(DataError) as info:
        resolve_mapping(None, settings_with("staging", mapping={"userId": 5}))
    assert info.value.source == "/config/config.toml [profiles.staging.mapping]"
    assert info.value.field == "userId"
