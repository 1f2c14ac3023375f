"""The reject and dead-letter files: NDJSON, one `{"error": {...}, "event": {...}}` a line.

`error` says why (and where the event came from); `event` is the event as it would have
been sent, messageId included, so a later `cmdai replay` of the file sends the same ids.
`replay` reads such lines as the event inside them (`unwrap`). A record that could not
be read at all has no `event`, only its place in the input.
"""

from __future__ import annotations

import errno
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson

from cmdai_cli import outpaths
from cmdai_cli.errors import UsageError


def unwrap(value: dict[str, Any]) -> dict[str, Any] | None:
    """The event inside a reject or dead-letter line; `value` itself for any other event.

    None for a line that records an unreadable record (it has nothing to send).
    """
    if "error" in value and len(value) <= 2 and type(value["error"]) is dict:
        event = value.get("event")
        if type(event) is dict:
            return event
        if len(value) == 1 and "reason" in value["error"]:
            return None
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ErrorLog:
    """Appends error lines to `path` (created 0600 on the first line); thread-safe.

    With `path` None nothing is written, only counted (a dry run). `sync` makes what was
    written durable; the checkpoint calls it before recording the positions involved.
    """

    def __init__(self, path: Path | None, target: str, *, flush_every: int = 512) -> None:
        self.path = path
        self.target = target
        self.flush_every = flush_every
        self.count = 0
        self.reasons: dict[str, int] = {}
        self._lock = threading.Lock()
        self._parts: list[bytes] = []
        self._stream: IO[bytes] | None = None
        self._dirty = False

    def write(
        self,
        reason: str,
        *,
        event: dict[str, Any] | None = None,
        source: str | None = None,
        line: int | None = None,
        index: int | None = None,
        status: int | None = None,
        attempts: int | None = None,
    ) -> None:
        error: dict[str, Any] = {"reason": reason, "target": self.target, "at": _now()}
        if source is not None:
            error["source"] = source
        if line is not None:
            error["line"] = line
        if index is not None:
            error["index"] = index
        if status is not None:
            error["status"] = status
        if attempts is not None:
            error["attempts"] = attempts
        record: dict[str, Any] = {"error": error}
        if event is not None:
            record["event"] = event
        data = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            self.count += 1
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            if self.path is None:
                return
            self._parts.append(data)
            self._dirty = True
            if len(self._parts) >= self.flush_every:
                self._flush()

    def _open(self) -> IO[bytes]:
        if self._stream is None:
            assert self.path is not None
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._stream = outpaths.open_append(self.path, 0o600)
            except OSError as exc:
                raise UsageError(f"{self.path}: cannot write: {exc.strerror}") from None
        return self._stream

    def _flush(self) -> None:
        if self._parts:
            stream = self._open()
            stream.write(b"".join(self._parts))
            self._parts = []
            stream.flush()

    def flush(self) -> None:
        """Hand what was written to the operating system, without waiting for the disk:
        a process that ends now loses none of it."""
        with self._lock:
            self._flush()

    def sync(self) -> None:
        """Write out and fsync everything written so far."""
        with self._lock:
            if not self._dirty:
                return
            self._flush()
            if self._stream is not None:
                try:
                    os.fsync(self._stream.fileno())
                except OSError as exc:
                    # A device or FIFO given as the log (/dev/null, /dev/stdout) has
                    # nothing to sync; a file that cannot be synced is an error.
                    if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
                        raise
            self._dirty = False

    def close(self) -> None:
        self.sync()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
