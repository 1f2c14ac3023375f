"""The `Receiver`: a local Segment Tracking API and what it received.

It answers as Segment does (see `protocol`) and flags what Segment would accept but
later drop (`cmdai_cli.segment.messages.flags_for`). Every accepted message is written
to the `out` file, kept in a bounded list, and handed to `on_message` before the 200 is
sent, so an acknowledged message is never lost. Write keys are stripped from stored
messages. Bodies, connections and memory are bounded (see `server`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from cmdai_cli import redact
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver import browser, inspection
from cmdai_cli.receiver.kept import Entry, Kept, Row
from cmdai_cli.receiver.protocol import (
    BATCH_PATHS,
    METRICS_PATH,
    SINGLE_PATHS,
    Rejected,
    basic_auth_key,
    decode_body,
    now_stamp,
    parse_encoded,
)
from cmdai_cli.receiver.server import Dropped, Handler, Server, read_body

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
        max_connections: int = 64,
        remember_ids: int = 100_000,
    ) -> None:
        self.bind = bind
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
        self._max_connections = max_connections
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._out: IO[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Receiver:
        if self.out_path is not None:
            try:
                self._out = self.out_path.open("ab")
            except OSError as exc:
                where = self.out_path
                raise UsageError(f"{where}: cannot open for writing: {exc.strerror}") from None
        try:
            self._server = Server(
                (self.bind, self.port),
                self._handle,
                self._count_drop,
                self._max_connections,
            )
        except OSError as exc:
            self._close_out()
            raise UsageError(f"cannot listen on {self.bind}:{self.port}: {exc.strerror}") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"cmdai-receiver-{self.port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
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

    def _reject(self, handler: Handler, rejected: Rejected) -> None:
        with self._lock:
            self._stats.rejected[rejected.status] = self._stats.rejected.get(rejected.status, 0) + 1
            self.kept.reject(rejected.status)
        body = {"success": False, "code": rejected.code, "message": rejected.message}
        handler.reply(rejected.status, body, close=rejected.close)

    def _inspect(self, handler: Handler, method: str) -> bool:
        """Answer a request to the inspection API; False for any other path."""
        if not handler.path.startswith(inspection.PREFIX):
            return False
        if method == "POST":
            try:
                read_body(handler)
            except (Rejected, Dropped):
                handler.close_connection = True
        status, body = inspection.answer(self, method, handler.path)
        handler.reply(status, body)
        return True

    def _handle(self, handler: Handler) -> None:
        if self._inspect(handler, handler.command):
            return
        method = handler.command
        headers = handler.headers
        handler.answer_headers = browser.cors_headers(
            headers.get("Origin"),
            headers.get("Access-Control-Request-Headers"),
            preflight=method == "OPTIONS",
        )
        path = handler.path.split("?", 1)[0].rstrip("/")
        if method != "POST":
            browser.answer_other(handler, method, path, self.write_key, self.url)
            return
        with self._lock:
            self._stats.requests += 1
        try:
            if path == METRICS_PATH:
                # analytics.js's delivery metrics: read and acknowledged, not messages.
                read_body(handler)
                handler.reply(200, {"success": True})
                return
            if path not in BATCH_PATHS and path not in SINGLE_PATHS:
                raise Rejected(404, "not_found", f"no such endpoint: {path or '/'}", close=True)
            raw = read_body(handler)
            body = decode_body(raw, handler.headers.get("Content-Encoding"))
            now = now_stamp()
            auth_key = basic_auth_key(handler.headers.get("Authorization"))
            messages = parse_encoded(
                path, body, self.write_key, auth_key, now, self.reject_wrong_key
            )
        except Rejected as rejected:
            self._reject(handler, rejected)
            return
        except Dropped:
            handler.close_connection = True
            self._count_drop()
            return
        try:
            self._store(messages)
        except OSError as exc:
            log.warning("could not store a request: %s", exc.strerror)
            self._reject(handler, Rejected(500, "server_error", "could not store the messages"))
            return
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
            self._settling.add(ticket)
        try:
            handler.reply(200, {"success": True})
        finally:
            # After the answer: the client builds its next batch meanwhile.
            self._accept(path, messages, now, ticket)

    def _store(self, messages: list[tuple[dict[str, Any], bytes, tuple[str, ...]]]) -> None:
        """Append the messages to `out` before they are acknowledged."""
        if self._out is None:
            return
        data = b"\n".join(raw for _, raw, _ in messages) + b"\n"
        with self._out_lock:
            if self._out is not None:
                self._out.write(data)
                self._out.flush()

    def _accept(
        self,
        path: str,
        messages: list[tuple[dict[str, Any], bytes, tuple[str, ...]]],
        now: str,
        ticket: int,
    ) -> None:
        accepted = []
        try:
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


def _received(entry: Entry) -> Received:
    return Received(orjson.loads(entry.raw), entry.flags, entry.received_at, entry.path, entry.raw)
