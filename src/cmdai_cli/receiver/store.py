"""The `Receiver`: a local Segment Tracking API and what it received.

It answers as Segment does (see `protocol`) and flags what Segment would accept but
later drop (`cmdai_cli.segment.messages.flags_for`). Every accepted message is written
to the `out` file, kept in a bounded list, and handed to `on_message` before the 200 is
sent, so an acknowledged message is never lost. Write keys are stripped from stored
messages. Bodies, connections, deadlines and memory are bounded (see `server`); what
each request is answered is decided in `routes`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import orjson

from cmdai_cli import outpaths, redact
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver import routes
from cmdai_cli.receiver.kept import Entry, Kept, Row
from cmdai_cli.receiver.protocol import now_stamp
from cmdai_cli.receiver.server import Exchange, Limits, Server

# The flag of a message the --plan check could not finish.
NOT_CHECKED = "plan: not checked (the check failed)"
log = logging.getLogger("cmdai")


@dataclass(slots=True)
class Received:
    """One accepted message, as stored: write key removed, batch context merged.

    `raw` is the message as one compact JSON line (no newline), as written to `out`.
    """

    message: dict[str, Any]
    flags: tuple[str, ...]
    received_at: str
    path: str
    raw: bytes = field(default=b"", repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "receivedAt": self.received_at,
            "path": self.path,
            "flags": list(self.flags),
            "message": self.message,
        }

    def as_json_line(self) -> bytes:
        """`as_dict()` as one JSON line, reusing the already encoded message."""
        raw = self.raw or orjson.dumps(self.message)
        head = orjson.dumps(
            {"receivedAt": self.received_at, "path": self.path, "flags": list(self.flags)}
        )
        return head[:-1] + b',"message":' + raw + b"}\n"


@dataclass
class Stats:
    requests: int = 0
    accepted: int = 0
    flagged: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    dropped_connections: int = 0
    callback_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "flagged": self.flagged,
            "rejected": {str(k): v for k, v in sorted(self.rejected.items())},
            "droppedConnections": self.dropped_connections,
        }


class Receiver:
    """A Segment-compatible receiver on `bind`:`port` (0 picks a free port).

    `write_key`: when set, requests should carry it (Basic auth or body `writeKey`);
    others are flagged, or refused with 401 when `reject_wrong_key`. The settings
    document analytics.js loads is served for it alone (404 for other keys, as Segment's
    CDN answers an unknown key), or for any key when no `write_key` is set.
    `out`: a file that gets one NDJSON line per accepted message before it is answered.
    `on_message`: called with each `Received` in the handler thread (`on_batch`: with
    the list from one request), after it is stored; errors in them are counted, never
    fatal. The last `keep` messages stay available via `messages()`.
    """

    def __init__(
        self,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        write_key: str | None = None,
        reject_wrong_key: bool = False,
        out: str | Path | None = None,
        on_message: Callable[[Received], Any] | None = None,
        on_batch: Callable[[list[Received]], Any] | None = None,
        keep: int = 10_000,
        max_connections: int | None = None,
        remember_ids: int = 100_000,
        limits: Limits | None = None,
        check: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None,
    ) -> None:
        self.bind = bind
        # More flags for each accepted message (`listen --plan`: a tracking plan's).
        self.check = check
        self.port = port
        self.write_key = write_key
        self.reject_wrong_key = reject_wrong_key
        redact.register(write_key)
        self.out_path = Path(out) if out is not None else None
        self.on_message = on_message
        self.on_batch = on_batch
        self._stats = Stats()
        # Requests answered whose bookkeeping (flags, list, callbacks) is still running,
        # by ticket: a reader waits only for those answered before it asked.
        self._settling: set[int] = set()
        self._tickets = 0
        # Kept encoded: thousands of retained dicts would make every GC pass slower.
        self.kept = Kept(keep=keep, remember_ids=remember_ids)
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        limits = limits or Limits()
        if max_connections is not None:
            limits = replace(limits, max_connections=max_connections)
        self.limits = limits
        self._server: Server | None = None
        self._out: IO[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Receiver:
        if self.out_path is not None:
            try:
                # Unbuffered: a failed write is cut back at once to the last whole line.
                self._out = outpaths.open_append(self.out_path)
            except OSError as exc:
                where = self.out_path
                raise UsageError(f"{where}: cannot open for writing: {exc.strerror}") from None
        try:
            self._server = Server(
                (self.bind, self.port), self._handle, self._count_drop, self.limits
            ).start()
        except OSError as exc:
            self._close_out()
            raise UsageError(f"cannot listen on {self.bind}:{self.port}: {exc.strerror}") from None
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        with self._out_lock:
            self._close_out()

    def _close_out(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ reading

    @property
    def stats(self) -> Stats:
        """Counters, including every request answered so far."""
        with self._arrived:
            self._settle()
            return self._stats

    def _settle(self) -> None:
        # Bookkeeping runs after the answer; readers wait for it so that what a
        # client saw acknowledged is always visible here. Requests answered later are
        # not waited for, so a busy intake never holds a reader up.
        pending = set(self._settling)
        if pending:
            self._arrived.wait_for(lambda: not (pending & self._settling), timeout=5)

    def messages(self) -> list[Received]:
        """The last `keep` accepted messages, oldest first (all answered requests' included)."""
        return [_received(entry) for entry in self.kept_entries()]

    def kept_entries(self) -> list[Entry]:
        """The kept messages, encoded, oldest first (all answered requests' included)."""
        with self._arrived:
            self._settle()
            return self.kept.entries()

    def kept_rows(self) -> list[Row]:
        """The kept rows, oldest first (all answered requests' included): for queries."""
        with self._arrived:
            self._settle()
            return self.kept.rows()

    def kept_summary(self) -> dict[str, Any]:
        """Counts since the start or the last reset, as `GET /cmdai/summary` gives them."""
        with self._arrived:
            self._settle()
            return self.kept.summary()

    def forget(self) -> int:
        """Forget the kept messages and their counts (the `out` file stays); how many."""
        with self._arrived:
            self._settle()
            return self.kept.reset(now_stamp())

    def wait_for(
        self, count: int = 1, *, message_id: str | None = None, timeout: float = 5.0
    ) -> list[Received]:
        """Wait until `count` messages (or the one with `message_id`) have arrived.

        Returns the matching messages so far, which may be fewer on timeout.
        """
        deadline = time.monotonic() + timeout

        needle = None if message_id is None else orjson.dumps({"messageId": message_id})[1:-1]

        def matching() -> list[Received]:
            kept = [
                _received(entry)
                for entry in self.kept.entries()
                if needle is None or needle in entry.raw
            ]
            if message_id is None:
                return kept
            return [r for r in kept if r.message.get("messageId") == message_id]

        with self._arrived:
            found = matching()
            while len(found) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
                found = matching()
            return found

    # ------------------------------------------------------------------ serving

    def _count_drop(self) -> None:
        with self._lock:
            self._stats.dropped_connections += 1

    def count_rejected(self, status: int) -> None:
        with self._lock:
            self._stats.rejected[status] = self._stats.rejected.get(status, 0) + 1
            self.kept.reject(status)

    def count_request(self) -> None:
        with self._lock:
            self._stats.requests += 1

    def _handle(self, exchange: Exchange) -> None:
        routes.answer(self, exchange)

    def acknowledge(
        self,
        exchange: Exchange,
        path: str,
        messages: list[tuple[dict[str, Any], bytes, tuple[str, ...]]],
        now: str,
    ) -> None:
        """Answer 200, then do the bookkeeping; readers wait until it is done."""
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
            self._settling.add(ticket)
        if not self._wants_objects:
            # No callback that could block: the bookkeeping runs right after the answer
            # went out, without a trip through a worker thread.
            exchange.reply(200, {"success": True})
            self._accept(path, messages, now, ticket)
            return
        # After the answer, in a worker: the client builds its next batch meanwhile.
        exchange.reply(
            200, {"success": True}, then=lambda: self._accept(path, messages, now, ticket)
        )

    def store(self, messages: list[tuple[dict[str, Any], bytes, tuple[str, ...]]]) -> None:
        """Append the messages to `out` before they are acknowledged."""
        if self._out is None:
            return
        data = b"\n".join(raw for _, raw, _ in messages) + b"\n"
        with self._out_lock:
            if self._out is not None:
                outpaths.append_whole(self._out, data)

    def _accept(
        self,
        path: str,
        messages: list[tuple[dict[str, Any], bytes, tuple[str, ...]]],
        now: str,
        ticket: int,
    ) -> None:
        accepted = []
        try:
            check = self.check
            if check is not None:
                messages = [(m, raw, flags + _checked(check, m)) for m, raw, flags in messages]
            with self._lock:
                all_flags = self.kept.add_batch(messages, now, path)
                if self._wants_objects:
                    accepted = [
                        Received(message, flags, now, path, raw)
                        for (message, raw, _), flags in zip(messages, all_flags, strict=True)
                    ]
                self._stats.flagged += sum(1 for flags in all_flags if flags)
                self._stats.accepted += len(messages)
            self._notify(accepted)
        finally:
            with self._lock:
                self._settling.discard(ticket)
                self._arrived.notify_all()

    @property
    def _wants_objects(self) -> bool:
        return self.on_message is not None or self.on_batch is not None

    def _notify(self, accepted: list[Received]) -> None:
        if not accepted:
            return
        callbacks: list[tuple[Callable[[Any], Any], list[Any]]] = []
        if self.on_batch is not None:
            callbacks.append((self.on_batch, [accepted]))
        if self.on_message is not None:
            callbacks.append((self.on_message, accepted))
        for callback, calls in callbacks:
            for argument in calls:
                try:
                    callback(argument)
                except Exception:
                    with self._lock:
                        self._stats.callback_errors += 1
                    log.debug("a receiver callback failed", exc_info=True)


def _checked(
    check: Callable[[Mapping[str, Any]], tuple[str, ...]], message: dict[str, Any]
) -> tuple[str, ...]:
    """The flags `check` gives a message; a check that fails flags it, and it is still kept:
    it was acknowledged already."""
    try:
        return check(message)
    except Exception:
        log.debug("a message could not be checked", exc_info=True)
        return (NOT_CHECKED,)


def _received(entry: Entry) -> Received:
    return Received(orjson.loads(entry.raw), entry.flags, entry.received_at, entry.path, entry.raw)
