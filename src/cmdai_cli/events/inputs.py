"""Inputs: files, directories, glob patterns or `-` (stdin), and their bytes in chunks.

A directory stands for its files, sorted by name, hidden ones skipped. Gzip is
recognised by its magic bytes, whatever the name, and concatenated members (as
`cat a.gz b.gz` makes) read as one stream.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cmdai_cli.errors import DataError

__all__ = ["CHUNK_BYTES", "Input", "Truncated", "chunks", "expand_inputs"]

CHUNK_BYTES = 1 << 18  # big enough to amortise, small enough to stay in cache
_GZIP_MAGIC = b"\x1f\x8b"
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Input:
    """One input: a file path, or stdin when `path` is None."""

    name: str
    path: Path | None = None

    def open(self) -> IO[bytes]:
        if self.path is None:
            return sys.stdin.buffer
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror}", source=self.name) from None


_STDIN = Input("<stdin>")


def expand_inputs(specs: Sequence[str]) -> list[Input]:
    """Files, directories, globs and `-` as a list of inputs; no specs means stdin.

    Raises DataError for a path that does not exist or a glob that matches nothing,
    before anything is read.
    """
    if not specs:
        return [_STDIN]
    inputs: list[Input] = []
    for spec in specs:
        if spec == "-":
            inputs.append(_STDIN)
            continue
        path = Path(spec)
        if path.is_dir():
            inputs.extend(
                Input(str(child), child)
                for child in sorted(path.iterdir())
                if child.is_file() and not child.name.startswith(".")
            )
        elif path.exists():
            inputs.append(Input(spec, path))
        elif _GLOB_CHARS.search(spec):
            matches = sorted(m for m in glob.glob(spec, recursive=True) if os.path.isfile(m))
            if not matches:
                raise DataError("no file matches this pattern", source=spec)
            inputs.extend(Input(m, Path(m)) for m in matches)
        else:
            raise DataError("no such file or directory", source=spec)
    return inputs


class Truncated(Exception):
    """Gzip data that stops before its end."""


def chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """The bytes of `stream` in large chunks, gunzipped when it starts as gzip.

    Raises Truncated when gzip data ends early, zlib.error when it is corrupt.
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
        data = inflater.decompress(pending)
        if data:
            yield data
        # Concatenated gzip members (as `cat a.gz b.gz` makes) are one stream.
        while inflater.eof and inflater.unused_data:
            rest = inflater.unused_data
            inflater = zlib.decompressobj(wbits=31)
            data = inflater.decompress(rest)
            if data:
                yield data
        pending = stream.read(CHUNK_BYTES)
    tail = inflater.flush()
    if tail:
        yield tail
    if not inflater.eof:
        raise Truncated("gzip data ends early (truncated file)")
