"""Reading a file of settings (a plan, a mapping, expectations, a capture, the profile,
a checkpoint, a key on stdin): bounded, and only from a regular file.

`read(path, what=..., limit=...)` opens without blocking (a FIFO with no writer would
hold the open forever), refuses anything but a regular file (`/dev/zero` would be read
until memory runs out), and refuses a file over `limit` bytes, naming the file and the
limit. `loads_json` and `loads_toml` parse with the event reader's words for a value
nested too deeply, never a RecursionError, and `check_depth` bounds what later code walks
recursively. Errors are built by `fail(reason)`, so that each caller keeps its own error
class (and exit code); the default is a ConfigError naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from cmdai_cli import outpaths
from cmdai_cli.errors import CmdaiError, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MiB = 1024 * 1024
# Settings are written by people: deeper than this is a mistake or an attack.
MAX_DEPTH = 64
TOO_DEEP = "nested too deeply (over 1024 levels)"

Fail = Callable[[str], CmdaiError]


def size_text(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit >= MiB else f"{limit // 1024} KiB"


def read(path: str | Path, *, what: str, limit: int, fail: Fail | None = None) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them.

    OSError (missing, unreadable, a directory as IsADirectoryError) is left to the caller.
    """
    refuse = fail or (lambda reason: ConfigError(f"{path}: {reason}"))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise refuse(f"is {outpaths.kind_of(mode)}; a {what} must be a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise refuse(f"the {what} is over {size_text(limit)}, more than cmdai reads")
    return data


def read_stream(stream: IO[bytes], *, what: str, limit: int, fail: Fail) -> bytes:
    """At most `limit` bytes of an open stream (stdin), refused past that."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise fail(f"the {what} is over {size_text(limit)}, more than cmdai reads")
    return data


def loads_json(data: bytes | str, *, fail: Fail) -> Any:
    """JSON text as Python values; ValueError for invalid JSON, `fail` for deep nesting."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise fail(TOO_DEEP) from None
    # orjson refuses what Python's json takes (NaN, integers over 64 bits): json decides.
    try:
        return json.loads(data)
    except RecursionError:
        raise fail(TOO_DEEP) from None


def loads_toml(text: str, *, fail: Fail) -> dict[str, Any]:
    """TOML text as a table; tomllib.TOMLDecodeError for invalid TOML."""
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except RecursionError:
        raise fail(TOO_DEEP) from None
    check_depth(document, fail=fail)
    return document


def check_depth(value: Any, *, fail: Fail, limit: int = MAX_DEPTH) -> None:
    """Refuse a value of tables and lists nested deeper than `limit`, without recursing."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise fail(f"nested too deeply (over {limit} levels)")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
