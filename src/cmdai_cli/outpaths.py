"""Where cmdai writes: one way to open an output path, whatever the path names.

A regular file (or a path not there yet) is written whole or not at all: a temporary
file beside it, renamed over it (`write_whole`). A device, a FIFO or `/dev/stdout` is not
a file cmdai may replace: renaming over `/dev/full` would leave a regular file there, so
such a path is written through (opened and written as it is), and refused with the
reason where a file must be replaced atomically (`require_regular`: a checkpoint).

cmdai removes only what it created (`Created`): a file it wrote and still finds in place,
never a node someone else made or put there since.

An append that fails part way (a full disk) is cut back to where it started, so that the
file ends with a whole line (`append_whole`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

from cmdai_cli import private_file
from cmdai_cli.errors import CmdaiError, UsageError

# The disk, not the path given: the run failed (exit 1), the flag was not wrong (exit 2).
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})


def special_kind(path: str | Path) -> str | None:
    """What `path` names when it is there and not a regular file ("a FIFO", ...), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return kind_of(mode)


def kind_of(mode: int) -> str | None:
    """What a file of `mode` (`st_mode`) is when not a regular file ("a FIFO", ...), else None."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file"


def require_regular(path: str | Path, what: str, why: str) -> None:
    """Refuse a `path` that is there and is not a regular file, saying `why` it must be."""
    kind = special_kind(path)
    if kind is not None:
        raise UsageError(f"{path}: is {kind}; {what} must be a regular file ({why})")


def write_failure(path: str | Path, doing: str, exc: OSError) -> CmdaiError:
    """The error for an OSError while `doing` something to `path`: a failure (exit 1) when
    the disk is full or failing, a usage error (exit 2) when the path cannot be used."""
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_ERRORS:
        return CmdaiError(f"{path}: cannot {doing}: {reason}")
    return UsageError(f"{path}: cannot {doing}: {reason}")


def write_whole(path: Path, data: bytes, *, private: bool = False) -> None:
    """Make `data` the content of `path`: atomically for a file, written through otherwise.

    `private` files are 0600 (`private_file.replace`), others 0644. OSError is the caller's.
    """
    if special_kind(path) is not None:
        _write_through(path, data)
        return
    if private:
        private_file.replace(path, data)
        return
    with replacing(path) as handle:
        handle.write(data)


@contextlib.contextmanager
def replacing(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A new file beside `path` to write, renamed over it (made `mode`) when the block
    ends well and removed when it does not: readers see the old file or the whole new one.

    OSError (the temporary file cannot be made: no such directory, no permission) is the
    caller's.
    """
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_through(path: Path, data: bytes) -> None:
    fd = _open_writing(path, 0)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class Created(NamedTuple):
    """A file cmdai made, known by its device, inode and change time (an inode number is
    reused by the next file made after an unlink; the change time tells them apart)."""

    path: Path
    identity: tuple[int, int, int]

    @classmethod
    def of(cls, path: Path) -> Created | None:
        """The file now at `path` if it is a regular file, else None (nothing to remove)."""
        try:
            info = os.lstat(path)
        except OSError:
            return None
        return cls(path, _identity(info)) if stat.S_ISREG(info.st_mode) else None

    def remove(self) -> None:
        """Unlink the path if it still is the file cmdai made."""
        try:
            info = os.lstat(self.path)
        except OSError:
            return
        if _identity(info) == self.identity:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def open_append(path: str | Path, mode: int = 0o644) -> IO[bytes]:
    """`path` opened to append, unbuffered (see `append_whole`), created if missing.

    A FIFO nobody reads fails at once (ENXIO) instead of blocking the open for ever.
    """
    fd = _open_writing(path, os.O_CREAT | os.O_APPEND, mode)
    return os.fdopen(fd, "ab", buffering=0)


def _open_writing(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor to write `path`; a FIFO without a reader fails (ENXIO), saying so."""
    try:
        fd = os.open(path, os.O_WRONLY | flags | getattr(os, "O_NONBLOCK", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "a FIFO that nobody reads", str(path)) from None
        raise
    os.set_blocking(fd, True)
    return fd


def _identity(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_dev, info.st_ino, info.st_ctime_ns)


def append_whole(stream: IO[bytes], data: bytes) -> None:
    """Append `data` to an unbuffered stream; on failure, cut it back to where it was.

    Raises the OSError after cutting back (a device cannot be cut back, and is left).
    """
    start = None
    with contextlib.suppress(OSError):
        start = os.lseek(stream.fileno(), 0, os.SEEK_END)
    try:
        view = memoryview(data)
        while view:
            written = stream.write(view)
            if not written:
                raise OSError("nothing written")
            view = view[written:]
    except OSError:
        if start is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(stream.fileno(), start)
        raise
