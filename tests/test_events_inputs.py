"""Inputs: paths, directories, globs and stdin, and gzip recognised by its bytes."""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from pathlib import Path

import pytest

from cmdai_cli.errors import DataError
from cmdai_cli.events.inputs import Input, Truncated, chunks, expand_inputs


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_directories_are_their_visible_files_sorted_and_globs_expand(tmp_path: Path) -> None:
    folder = tmp_path / "day"
    folder.mkdir()
    (folder / "2.ndjson").write_bytes(b"")
    (folder / "1.ndjson").write_bytes(b"")
    (folder / ".hidden").write_bytes(b"junk")
    (folder / "sub").mkdir()
    other = write(tmp_path, "x.ndjson", b"")
    names = [i.name for i in expand_inputs([str(folder), str(tmp_path / "x.*"), other])]
    assert names == [str(folder / "1.ndjson"), str(folder / "2.ndjson"), other, other]


def test_missing_inputs_fail_before_reading(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        expand_inputs([str(tmp_path / "absent.ndjson")])
    with pytest.raises(DataError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.gz")])
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / ".hidden").write_bytes(b"{}\n")
    with pytest.raises(DataError, match="no files in this directory") as raised:
        expand_inputs([str(empty)])
    assert raised.value.source == str(empty)


def test_an_empty_directory_is_bad_input_for_every_reader(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for args in (["validate"], ["map-payload"], ["replay", "--to", "segment", "--dry-run"]):
        result = cli(*args, str(tmp_path / "empty"))
        assert result.exit_code == 4, (args, result.stderr)
        assert result.stderr.strip().endswith("empty: no files in this directory")


def test_stdin_by_default_and_as_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stdin:
        buffer = io.BytesIO(b'{"a":1}\n')

    monkeypatch.setattr(sys, "stdin", Stdin())
    assert [i.name for i in expand_inputs([])] == ["<stdin>"]
    assert [i.name for i in expand_inputs(["-"])] == ["<stdin>"]
    with expand_inputs(["-"])[0].open() as stream:
        assert stream.read() == b'{"a":1}\n'


def test_a_file_that_cannot_be_opened_is_a_data_error_naming_it(tmp_path: Path) -> None:
    # A directory given as a file path: the one open failure that does not depend on
    # who runs the test (root reads any file, whatever its mode).
    with pytest.raises(DataError, match="cannot read: Is a directory") as info:
        Input("events.ndjson", tmp_path).open()
    assert info.value.source == "events.ndjson"


def test_gzip_is_recognised_by_its_bytes_and_members_join() -> None:
    data = gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}\n')
    assert b"".join(chunks(io.BytesIO(data))) == b'{"a":1}\n{"b":2}\n'
    assert b"".join(chunks(io.BytesIO(b"plain"))) == b"plain"


def test_truncated_and_corrupt_gzip_raise() -> None:
    data = gzip.compress(b'{"a":1}\n' * 1000)
    with pytest.raises(Truncated):
        b"".join(chunks(io.BytesIO(data[:-30])))
    with pytest.raises(zlib.error):
        b"".join(chunks(io.BytesIO(data[:10] + b"\x00" * 40)))
