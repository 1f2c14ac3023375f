"""Inputs: files, directories, glob patterns, URLs or `-` (stdin), and their bytes in chunks.

A directory stands for its files, sorted by name, hidden ones skipped. A URL
(`s3://bucket/segment-logs/source/`, `gs://...`, `https://...`) names an object, a
prefix or a pattern in object storage (`events.storage`). Gzip is recognised by its
magic bytes, whatever the name (so every `.gz` file), and concatenated members (as
`cat a.gz b.gz` makes) read as one stream.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from cmdai_cli.errors import DataError
from cmdai_cli.events.archive import skipped_by_since

if TYPE_CHECKING:
    from cmdai_cli.events.storage import ReadAhead

__all__ = [
    "CHUNK_BYTES",
    "Input",
    "ReadStats",
    "Truncated",
    "chunks",
    "expand_inputs",
    "read_ahead",
]

CHUNK_BYTES = 1 << 18  # big enough to amortise, small enough to stay in cache
_GZIP_MAGIC = b"\x1f\x8b"
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class ReadStats:
    """What the inputs cost to read: files (or objects) opened, and their bytes as stored."""

    files: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Input:
    """One input: a file path, an object's URL, or stdin when both are None.

    An object carries the size and version (ETag, generation) its listing gave, and
    the `ReadAhead` of its list, if any. With `stats`, opening counts the input and
    reading counts its bytes (before gunzip).
    """

    name: str
    path: Path | None = None
    url: str | None = None
    size: int | None = None
    version: str | None = None
    stats: ReadStats | None = field(default=None, compare=False, repr=False)
    ahead: ReadAhead | None = field(default=None, compare=False, repr=False)

    @property
    def is_stdin(self) -> bool:
        return self.path is None and self.url is None

    def open(self) -> IO[bytes]:
        if self.ahead is not None and self.url is not None:
            stream = self.ahead.open(self.url, self.size)
        elif self.url is not None:
            # Object storage only: storage adds about 6-10 ms (python -X importtime).
            from cmdai_cli.events.storage import open_url

            stream = open_url(self.url, self.size)
        elif self.path is None:
            stream = sys.stdin.buffer
            raw = getattr(stream, "raw", None)
            if raw is not None and stream.isatty():
                # A terminal's Ctrl-D ends one read with no bytes; a buffered reader asked
                # for a block would read again and wait for a second Ctrl-D.
                stream = cast(IO[bytes], raw)
        else:
            try:
                stream = open(self.path, "rb")  # noqa: SIM115 (the reader closes it)
            except OSError as exc:
                raise DataError(f"cannot read: {exc.strerror}", source=self.name) from None
        if self.stats is None:
            return stream
        self.stats.files += 1
        return cast(IO[bytes], _Counted(stream, self.stats, closes=not self.is_stdin))


class _Counted:
    """A stream that adds the bytes read from it to `stats`."""

    def __init__(self, stream: IO[bytes], stats: ReadStats, *, closes: bool) -> None:
        self._stream = stream
        self._stats = stats
        self._closes = closes

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._stats.bytes += len(data)
        return data

    def close(self) -> None:
        if self._closes:
            self._stream.close()

    def __enter__(self) -> _Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def expand_inputs(
    specs: Sequence[str], *, since: datetime | None = None, stats: ReadStats | None = None
) -> list[Input]:
    """Files, directories, globs, URLs and `-` as a list of inputs; no specs means stdin.

    With `since`, files in Segment archive day folders that end at or before it are
    left out unread (`events.archive`). With `stats`, the inputs count what they read
    into it. Raises DataError for a path that does not exist, a directory with no files
    or a glob that matches nothing, before anything is read.
    """
    if not specs:
        return [Input("<stdin>", stats=stats)]
    inputs: list[Input] = []
    for spec in specs:
        if spec == "-":
            inputs.append(Input("<stdin>", stats=stats))
            continue
        if "://" in spec:
            # Object storage only: storage adds about 6-10 ms (python -X importtime).
            from cmdai_cli.events.storage import is_url, list_url

            if is_url(spec):
                inputs.extend(
                    Input(e.url, url=e.url, size=e.size, version=e.version, stats=stats)
                    for e in list_url(spec, since=since)
                )
                continue
        path = Path(spec)
        if path.is_dir():
            files = [
                Input(str(child), child, stats=stats)
                for child in sorted(path.iterdir())
                if child.is_file() and not child.name.startswith(".")
            ]
            if not files:
                # As for a pattern that matches nothing: a wrong path must not pass as
                # an input with no events.
                raise DataError("no files in this directory", source=spec)
            inputs.extend(files)
        elif path.exists():
            inputs.append(Input(spec, path, stats=stats))
        elif _GLOB_CHARS.search(spec):
            matches = sorted(m for m in glob.glob(spec, recursive=True) if os.path.isfile(m))
            if not matches:
                raise DataError("no file matches this pattern", source=spec)
            if since is not None:
                matches = [m for m in matches if not skipped_by_since(Path(m).parts, since)]
            inputs.extend(Input(m, Path(m), stats=stats) for m in matches)
        else:
            raise DataError("no such file or directory", source=spec)
    return read_ahead(inputs)


def read_ahead(inputs: list[Input]) -> list[Input]:
    """The inputs, their objects in storage set to be fetched one ahead, in this order.

    Call it again on a subset (a shard's) so that nothing outside it is fetched.
    """
    objects = [(item.url, item.size) for item in inputs if item.url is not None]
    if len(objects) < 2:
        return [replace(item, ahead=None) if item.ahead else item for item in inputs]
    # Object storage only: storage adds about 6-10 ms (python -X importtime).
    from cmdai_cli.events.storage import ReadAhead

    ahead = ReadAhead(objects)
    return [replace(item, ahead=ahead) if item.url is not None else item for item in inputs]


class Truncated(Exception):
    """Gzip data that stops before its end."""


def chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """The bytes of `stream` in chunks of at most `CHUNK_BYTES`, gunzipped when it starts as gzip.

    However well the data compresses, no chunk is larger: a gzip bomb costs time, never
    memory. Raises Truncated when gzip data ends early, zlib.error when it is corrupt.
    """
    first = stream.read(max(CHUNK_BYTES, len(_GZIP_MAGIC)))
    if not first.startswith(_GZIP_MAGIC):
        while first:
            yield first
            first = stream.read(CHUNK_BYTES)
        return
    pending = first
    inflater = zlib.decompressobj(wbits=31)
    while pending:
        before = inflater.copy()
        try:
            data = inflater.decompress(pending, CHUNK_BYTES)
        except zlib.error:
            # What decompresses before the damage is still the file's: hand it out first.
            salvaged = _salvage(before, pending)
            if salvaged:
                yield salvaged
            raise
        if data:
            yield data
        # What did not fit in this chunk waits in the inflater's input, not in its output.
        pending = inflater.unconsumed_tail
        # Concatenated gzip members (as `cat a.gz b.gz` makes) are one stream.
        if inflater.eof and inflater.unused_data:
            pending = inflater.unused_data
            inflater = zlib.decompressobj(wbits=31)
        if not pending:
            pending = stream.read(CHUNK_BYTES)
    tail = inflater.flush()
    if tail:
        yield tail
    if not inflater.eof:
        raise Truncated("gzip data ends early (truncated file)")


def _salvage(inflater: zlib._Decompress, data: bytes) -> bytes:
    """The output of the longest start of `data` that `inflater` takes without an error."""
    good, bad = 0, len(data)
    while bad - good > 1:
        middle = (good + bad) // 2
        try:
            inflater.copy().decompress(data[:middle], CHUNK_BYTES)
        except zlib.error:
            bad = middle
        else:
            good = middle
    return inflater.decompress(data[:good], CHUNK_BYTES) if good else b""
