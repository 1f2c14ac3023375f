"""The checkpoint: which input positions are done, kept durably so a replay can resume.

A journal file: a header line naming the run (target, destination, inputs and their
fingerprints, selection), then one `{"done": [start, end]}` line per batch the target
acknowledged (or that failed for good and went to the dead-letter file). A position is
only recorded after the target answered for it, and the line is fsynced before the
batch's in-flight slot is given back, so what is lost on a crash is at most the batches
in flight. Answers that come in together share one write and fsync (group commit).

A line may also count the events of its range that were not delivered (`failed`: in
the dead-letter file; `rejected`: in the reject file), so that a resumed run still
reports, and exits non-zero for, what earlier runs could not deliver.

A torn last line (a crash mid-write) is ignored on reading. On resume the journal is
rewritten compacted, so it does not grow across many resumes.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson

from cmdai_cli import outpaths, private_file, settings_file
from cmdai_cli.errors import UsageError
from cmdai_cli.events.inputs import Input

FORMAT = "cmdai-replay-checkpoint"
VERSION = 1
HEAD_BYTES = 64 * 1024
# A journal holds ranges, not events: far below this even for a billion events.
CHECKPOINT_LIMIT = 256 * settings_file.MiB


class Ranges:
    """Disjoint, sorted, half-open ranges of positions."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        # Every range that touches or overlaps [start, end) merges into it.
        lo = bisect.bisect_left(self.ends, start)
        hi = bisect.bisect_right(self.starts, end)
        if lo < hi:
            start = min(start, self.starts[lo])
            end = max(end, self.ends[hi - 1])
        self.starts[lo:hi] = [start]
        self.ends[lo:hi] = [end]

    def __contains__(self, position: int) -> bool:
        at = bisect.bisect_right(self.starts, position) - 1
        return at >= 0 and position < self.ends[at]

    def __bool__(self) -> bool:
        return bool(self.starts)

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends, strict=True))


# ---------------------------------------------------------------- identity of a run


def fingerprint(inputs: Sequence[Input]) -> list[dict[str, Any]]:
    """Each input's name, size, mtime and hashes of its first and last 64 KiB (stdin: its
    name only).

    A change near the end of a file rewritten to the same size shows in the tail hash
    or, failing that, in the mtime. An object in storage gives its size and version
    (ETag, generation) from the listing instead: reading it would cost requests.
    """
    prints: list[dict[str, Any]] = []
    for item in inputs:
        if item.url is not None:
            prints.append({"name": item.name, "size": item.size, "version": item.version})
            continue
        if item.path is None:
            prints.append({"name": item.name})
            continue
        try:
            with open(item.path, "rb") as handle:
                head = handle.read(HEAD_BYTES)
                stat = os.fstat(handle.fileno())
                tail = _hash_range(handle, stat.st_size)
        except OSError:
            prints.append({"name": item.name})
            continue
        prints.append(
            {
                "name": item.name,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "head": hashlib.sha256(head).hexdigest(),
                "tail": tail,
            }
        )
    return prints


def _hash_range(handle: IO[bytes], end: int) -> str:
    """A hash of the 64 KiB of `handle` that end at `end`."""
    start = max(0, end - HEAD_BYTES)
    handle.seek(start)
    return hashlib.sha256(handle.read(end - start)).hexdigest()


def _tail_at(path: str, end: int) -> str | None:
    try:
        with open(path, "rb") as handle:
            return _hash_range(handle, end)
    except OSError:
        return None


def run_key(identity: dict[str, Any]) -> str:
    """A short stable hash of what makes two runs the same run."""
    data = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:20]


def input_names(inputs: Sequence[Input]) -> list[str]:
    return [str(item.path.resolve()) if item.path is not None else item.name for item in inputs]


def object_versions(inputs: Sequence[Input]) -> list[list[Any]]:
    """[size, version] of each input that is an object in storage, in order."""
    return [[item.size, item.version] for item in inputs if item.url is not None]


def _changed(
    recorded: list[dict[str, Any]], current: list[dict[str, Any]], paths: Sequence[str] = ()
) -> str | None:
    """Why the inputs are not those the journal was written for, or None.

    A file may have grown (appended to, as `listen --out` does): then what it held
    when the journal was written must be unchanged, its start and the 64 KiB before
    the old end. At the same size its mtime must be the same too.
    """
    if len(recorded) != len(current):
        return "the inputs are not the same files"
    for at, (old, new) in enumerate(zip(recorded, current, strict=True)):
        if "version" in old or "version" in new:
            if (old.get("size"), old.get("version")) != (new.get("size"), new.get("version")):
                return f"{new['name']} has changed (size or version)"
            continue
        if "head" not in old or "head" not in new:
            continue
        if old["head"] != new["head"] or new["size"] < old["size"]:
            return f"{new['name']} has changed"
        if "tail" not in old:
            continue  # written before tails were recorded
        if new["size"] == old["size"]:
            if old["tail"] != new.get("tail") or old.get("mtime_ns") != new.get("mtime_ns"):
                return f"{new['name']} has changed"
        elif at < len(paths) and _tail_at(paths[at], old["size"]) != old["tail"]:
            return f"{new['name']} has changed"
    return None


def _restart_hint(target: Any) -> str:
    """What starting over costs: Segment drops repeats, the other targets do not."""
    if target == "segment":
        # Segment deduplicates by messageId (integration facts: about 99% within 24 h).
        return "start again without --resume (Segment drops events whose messageId it has seen)"
    return (
        f"start again without --resume only if delivering twice is acceptable: {target} "
        "does not deduplicate, so events already delivered are delivered again"
    )


def check_resume(
    path: Path, header: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[int, int]], dict[str, int]]:
    """The journal at `path`, once it is known to belong to this run (`header`) and its
    inputs not to have changed; raises UsageError otherwise. A real run and a dry run
    both check through here, so a dry run refuses what the run would.
    """
    recorded, pairs, undelivered = read_journal(path)
    paths = header.get("inputs") or []
    problem = _changed(recorded.get("files") or [], header.get("files") or [], paths)
    if recorded.get("key") != header["key"]:
        if recorded.get("inputs") == header.get("inputs") and problem:
            raise UsageError(
                f"cannot resume from {path}: {problem} since it was written",
                hint=_restart_hint(header.get("target")),
            )
        raise UsageError(
            f"checkpoint {path} was written for another replay (other inputs, target or selection)",
            hint="give the same inputs and options, or start without --resume",
        )
    if problem:
        raise UsageError(
            f"cannot resume from {path}: {problem} since it was written",
            hint=_restart_hint(header.get("target")),
        )
    return recorded, pairs, undelivered


def done_before(path: Path, key: str) -> int:
    """How many positions a journal of the same run (`key`) at `path` records as done;
    0 when there is none, or it is another run's, or it cannot be read."""
    if not path.exists():
        return 0
    try:
        recorded, pairs, _ = read_journal(path)
    except UsageError:
        return 0
    if recorded.get("key") != key:
        return 0
    return sum(end - start for start, end in Ranges(pairs).pairs())


# ---------------------------------------------------------------- the journal


class Checkpoint:
    """An open journal. `commit(start, end)` returns once the range is on disk."""

    def __init__(
        self, path: Path, stream: IO[bytes], done: Ranges, undelivered: dict[str, int]
    ) -> None:
        self.path = path
        self.done = done
        self.undelivered = undelivered  # counted by earlier runs: failed, rejected
        self.before_write: list[Callable[[], None]] = []
        self._stream: IO[bytes] | None = stream
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._issued = 0
        self._durable = 0
        self._writing = False
        self._error: BaseException | None = None
        # The lock on the journal, held until `close`: one run per checkpoint.
        self._hold = contextlib.ExitStack()

    @classmethod
    def open(cls, path: Path, header: dict[str, Any], *, resume: bool) -> Checkpoint:
        """Start a journal at `path`, or with `resume` continue the one there.

        Resuming checks that the journal belongs to this run (same key) and that the
        inputs have not changed; a missing journal starts from the beginning.
        """
        outpaths.require_regular(
            path, "a checkpoint", "it is replaced whole at the start and read back by --resume"
        )
        hold = contextlib.ExitStack()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            hold.enter_context(private_file.held(path))
        except private_file.Busy as busy:
            who = f"process {busy.pid}" if busy.pid else "another process"
            raise UsageError(
                f"{path}: the checkpoint is in use by {who}, another replay of the same "
                "events; wait for it to end, or give this run its own --checkpoint"
            ) from None
        except OSError as exc:
            raise outpaths.write_failure(path, "lock the checkpoint", exc) from None
        try:
            return cls._open_held(path, header, resume=resume, hold=hold)
        except BaseException:
            hold.close()
            raise

    @classmethod
    def _open_held(
        cls, path: Path, header: dict[str, Any], *, resume: bool, hold: contextlib.ExitStack
    ) -> Checkpoint:
        header = {"format": FORMAT, "version": VERSION, **header}
        done = Ranges()
        undelivered = {"failed": 0, "rejected": 0}
        if resume and path.exists():
            recorded, pairs, undelivered = check_resume(path, header)
            header = {**header, "created": recorded.get("created", header.get("created"))}
            done = Ranges(pairs)
        header = {**header, "resumed": datetime.now(timezone.utc).isoformat()} if resume else header
        lines = [orjson.dumps(header)]
        lines.extend(orjson.dumps({"done": [s, e]}) for s, e in done.pairs())
        if any(undelivered.values()):
            lines.append(orjson.dumps(undelivered))
        _write_atomically(path, b"".join(line + b"\n" for line in lines))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise outpaths.write_failure(path, "write the checkpoint", exc) from None
        opened = cls(path, os.fdopen(fd, "ab"), done, undelivered)
        opened._hold = hold
        return opened

    def commit(
        self, start: int, end: int, *, failed: int = 0, rejected: int = 0, wait: bool = True
    ) -> None:
        """Record [start, end) as done; returns when it is durable. Thread-safe.

        `failed` and `rejected` count the range's events that were not delivered. With
        `wait` False the range is only queued: `flush` makes everything queued durable
        in one write.
        """
        entry: dict[str, Any] = {"done": [start, end]}
        if failed:
            entry["failed"] = failed
        if rejected:
            entry["rejected"] = rejected
        line = orjson.dumps(entry) + b"\n"
        with self._cond:
            self.done.add(start, end)
            self._pending.append(line)
            self._issued += 1
            if wait:
                self._wait_durable(self._issued)

    def flush(self) -> None:
        """Return once every range committed so far is durable."""
        with self._cond:
            self._wait_durable(self._issued)

    def _wait_durable(self, ticket: int) -> None:
        # Called with the lock held.
        while self._durable < ticket:
            if self._error is not None:
                if isinstance(self._error, OSError):
                    raise outpaths.write_failure(self.path, "write the checkpoint", self._error)
                raise RuntimeError(f"the checkpoint could not be written: {self._error}")
            if self._writing:
                self._cond.wait()
                continue
            self._write_pending()

    def _write_pending(self) -> None:
        # Called with the lock held; releases it for the slow part so that commits
        # arriving meanwhile queue up for the next write.
        lines, self._pending = self._pending, []
        upto = self._issued
        self._writing = True
        self._cond.release()
        try:
            for hook in self.before_write:
                hook()
            stream = self._stream
            if stream is None:
                raise RuntimeError("the checkpoint is closed")
            stream.write(b"".join(lines))
            stream.flush()
            os.fsync(stream.fileno())
        except BaseException as exc:
            self._cond.acquire()
            self._writing = False
            self._error = exc
            self._cond.notify_all()
            if isinstance(exc, OSError):
                raise outpaths.write_failure(self.path, "write the checkpoint", exc) from None
            raise
        self._cond.acquire()
        self._writing = False
        self._durable = upto
        self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            while self._writing:
                self._cond.wait()
            if self._pending and self._error is None:
                self._write_pending()
            stream, self._stream = self._stream, None
            try:
                if stream is not None:
                    stream.close()
            except OSError as exc:
                # After a failed write the same failure comes back here: the first counts.
                if self._error is None:
                    raise outpaths.write_failure(self.path, "write the checkpoint", exc) from None
            finally:
                self._hold.close()


def read_journal(
    path: Path,
) -> tuple[dict[str, Any], list[tuple[int, int]], dict[str, int]]:
    """The header, the done ranges and the undelivered counts of a journal.

    Raises UsageError if the file is not a journal.
    """
    try:
        data = settings_file.read(
            path,
            what="checkpoint",
            limit=CHECKPOINT_LIMIT,
            fail=lambda reason: UsageError(f"{path}: {reason}"),
        )
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the checkpoint: {exc.strerror}") from None
    lines = data.split(b"\n")
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UsageError(f"{path} is not a replay checkpoint")
    if header.get("version") != VERSION:
        raise UsageError(f"{path}: checkpoint version {header.get('version')} is not supported")
    pairs: list[tuple[int, int]] = []
    undelivered = {"failed": 0, "rejected": 0}
    for raw in lines[1:]:
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # the torn tail of an interrupted write, or a blank line
        if not isinstance(entry, dict):
            continue
        done = entry.get("done")
        if isinstance(done, list) and len(done) == 2 and all(type(x) is int for x in done):
            pairs.append((done[0], done[1]))
        for name in undelivered:
            if type(entry.get(name)) is int:
                undelivered[name] += entry[name]
    return header, pairs, undelivered


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_file.replace(path, data)
    except OSError as exc:
        raise outpaths.write_failure(path, "write the checkpoint", exc) from None
