"""A corpus of bad inputs, generated here, through every command that reads events.

Each file starts with one good event, then goes bad. Every command that reads it
(map-payload, validate, replay) must end with exit 4 and one line naming the file, no
traceback, and what it wrote for the good event still written (for replay: delivered).
With `--on-error skip` the same files are read to the end with exit 0 (replay: 1, since
a rejected record is an event not delivered).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.receiver import ListenOptions, Receiver

from .conftest import WRITE_KEY

LIMIT = 4096
GOOD = {
    "type": "track",
    "event": "Corpus Event",
    "userId": "u-corpus",
    "messageId": "m-good-0",
    "timestamp": "2025-05-01T12:00:00.000Z",
    "properties": {"n": 0},
}
GOOD_LINE = json.dumps(GOOD).encode() + b"\n"
LATER = json.dumps({**GOOD, "messageId": "m-good-later"}).encode() + b"\n"


def _gzip_stream(parts: Iterator[bytes]) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([*(packer.compress(part) for part in parts), packer.flush()])


def _corrupt_gzip() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = packer.compress(GOOD_LINE) + packer.flush(zlib.Z_FULL_FLUSH)
    return head + b"\xff\xfe\xfd this is not deflate data" * 10


CORPUS: dict[str, Callable[[], bytes]] = {
    "not-json.ndjson": lambda: GOOD_LINE + b'{"type": "track", "event":\n' + LATER,
    "bad-utf8.ndjson": lambda: GOOD_LINE + b'{"type": "track", "event": "\xff\xfe"}\n' + LATER,
    "not-an-object.ndjson": lambda: GOOD_LINE + b"[1, 2, 3]\n" + LATER,
    "deep.ndjson": lambda: GOOD_LINE + b"[" * 3000 + b"]" * 3000 + b"\n" + LATER,
    "too-large.ndjson": lambda: GOOD_LINE + b'{"p": "' + b"x" * (4 * LIMIT) + b'"}\n' + LATER,
    "binary.bin": lambda: GOOD_LINE + bytes(range(256)) * 4 + b"\n" + LATER,
    "truncated.ndjson.gz": lambda: gzip.compress(GOOD_LINE + LATER * 2000)[:-200],
    "corrupt.ndjson.gz": _corrupt_gzip,
    "bomb.ndjson.gz": lambda: _gzip_stream(
        iter([GOOD_LINE, b'{"p": "', *(b"y" * (1 << 20) for _ in range(40)), b'"}\n', LATER])
    ),
    "unclosed-array.json": lambda: b"[" + json.dumps(GOOD).encode() + b',\n{"type": "track"',
    "array-junk.json": lambda: b"[" + json.dumps(GOOD).encode() + b", 42, " + LATER + b"]",
}
# Read to the end, those whose bad part is the end of the input, or a file's last record.
LAST_GOOD_LOST = {"truncated.ndjson.gz", "corrupt.ndjson.gz", "unclosed-array.json"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("corpus")
    files = {}
    for name, make in CORPUS.items():
        files[name] = where / name
        files[name].write_bytes(make())
    return files


def _check_failure(result: Any, path: Path) -> None:
    assert result.exit_code == 4, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cmdai: error:")]
    assert len(errors) == 1, result.stderr
    assert str(path) in errors[0]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_map_payload(cli, corpus: dict[str, Path], name: str) -> None:
    path = corpus[name]
    result = cli("map-payload", str(path), "--format", "ndjson", "--max-record-bytes", str(LIMIT))
    _check_failure(result, path)
    first = json.loads(result.stdout.splitlines()[0])
    assert (first["index"], first["userId"]) == (0, "u-corpus")
    skipped = cli(
        "map-payload", str(path), "--format", "ndjson", "--on-error", "skip",
        "--max-record-bytes", str(LIMIT),
    )  # fmt: skip
    assert skipped.exit_code == 0, skipped.stderr
    users = [json.loads(line)["userId"] for line in skipped.stdout.splitlines()]
    assert users[0] == "u-corpus"
    if name not in LAST_GOOD_LOST:
        assert len(users) == 2  # the event after the bad record was read too


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_validate(cli, corpus: dict[str, Path], name: str) -> None:
    path = corpus[name]
    # The good event is not in the built-in plan: its violation is the output before.
    result = cli("validate", str(path), "--json", "--max-record-bytes", str(LIMIT))
    _check_failure(result, path)
    first = json.loads(result.stdout.splitlines()[0])
    assert first["index"] == 0


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_replay(cli, corpus: dict[str, Path], name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    path = corpus[name]
    with Receiver(ListenOptions(write_key=WRITE_KEY)) as receiver:
        result = cli(
            "replay", str(path), "--to", "segment", "--host", receiver.url,
            "--max-record-bytes", str(LIMIT), "--checkpoint", str(tmp_path / "ck"),
        )  # fmt: skip
        _check_failure(result, path)
        arrived = [r.message["messageId"] for r in receiver.messages()]
    # Everything before the bad record was delivered (for a truncated file, that is most
    # of it), nothing after it.
    assert arrived[0] == "m-good-0"
    if name == "truncated.ndjson.gz":
        assert set(arrived) == {"m-good-0", "m-good-later"}
    else:
        assert arrived == ["m-good-0"]
