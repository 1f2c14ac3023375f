"""A local Segment Tracking API: what `cmdai listen` serves and `send-test --local` uses.

It answers as Segment does (400 for invalid JSON and over-limit messages or batches,
401 for a wrong write key when one is required, otherwise 200 `{"success": true}`) and
flags what Segment would accept but later drop. Every accepted message is written to
the `out` file, kept in a bounded list, and handed to `on_message` before the 200 is
sent, so an acknowledged message is never lost. Write keys are stripped from stored
messages. Bodies, connections and memory are bounded; a bad request never stops it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import socket
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from cmdai_cli import redact
from cmdai_cli.errors import UsageError
from cmdai_cli.segment_limits import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_ID,
    MESSAGE_TYPES,
)

# Bodies past the limit are read and discarded up to this much so the client sees the
# 400; beyond it the connection is simply closed.
DRAIN_LIMIT = 8 * 1024 * 1024
SINGLE_PATHS = {f"/v1/{kind}": kind for kind in MESSAGE_TYPES}
BATCH_PATH = "/v1/batch"

if TYPE_CHECKING:
    from cmdai_cli.segment_client import Outcome

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


class Rejected(Exception):
    """A request answered with an error status, as Segment would answer it."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def basic_auth_key(header: str | None) -> str | None:
    """The write key from `Authorization: Basic base64(key:)`, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


def decode_body(raw: bytes, encoding: str | None) -> bytes:
    """The request body after Content-Encoding, refusing what would exceed the batch limit."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        data = raw
    elif enc in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
        except zlib.error as exc:
            raise Rejected(400, "invalid_request", f"invalid gzip body: {exc}") from None
        if len(data) > MAX_BATCH_BYTES:
            raise _too_large()
        if not inflater.eof:
            raise Rejected(400, "invalid_request", "truncated gzip body")
    else:
        raise Rejected(400, "invalid_request", f"unsupported Content-Encoding {enc!r}")
    if len(data) > MAX_BATCH_BYTES:
        raise _too_large()
    return data


def _too_large() -> Rejected:
    return Rejected(400, "invalid_request", "the request is over Segment's 500 KB batch limit")


def flags_for(message: Mapping[str, Any]) -> tuple[str, ...]:
    """What Segment would accept with a 200 and then drop or not deliver."""
    flags = []
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        flags.append("unknown type")
    if kind == "alias":
        if not message.get("previousId"):
            flags.append("no previousId")
        if not message.get("userId"):
            flags.append("no userId")
    elif not message.get("userId") and not message.get("anonymousId"):
        flags.append("no userId or anonymousId")
    if kind == "track" and not message.get("event"):
        flags.append("track without event")
    if kind == "group" and not message.get("groupId"):
        flags.append("no groupId")
    message_id = message.get("messageId")
    if isinstance(message_id, str) and len(message_id) > MAX_MESSAGE_ID:
        flags.append("messageId over 100 characters")
    return tuple(flags)


def parse_messages(
    path: str, body: bytes, *, write_key: str | None = None, auth_key: str | None = None
) -> list[dict[str, Any]]:
    """The messages in a decoded request body, or `Rejected` as Segment would answer.

    `auth_key` is the key from Basic auth; with `write_key` set, it or the body's
    `writeKey` must match. Returned messages carry no `writeKey`.
    """
    return [message for message, _ in _parse(path, body, write_key, auth_key, None)]


def _parse(
    path: str, body: bytes, write_key: str | None, auth_key: str | None, now: str | None
) -> list[tuple[dict[str, Any], bytes]]:
    """Messages with their encoded form (with `receivedAt` = `now` added, when given)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Rejected(400, "invalid_request", "invalid JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "invalid_request", "the body must be a JSON object")
    body_key = data.pop("writeKey", None)
    if write_key is not None and write_key not in (auth_key, body_key):
        raise Rejected(401, "unauthorized", "invalid write key")
    if path == BATCH_PATH:
        items = data.get("batch")
        if not isinstance(items, list):
            raise Rejected(400, "invalid_request", "batch must be a list of messages")
        if len(items) > MAX_BATCH_MESSAGES:
            raise Rejected(
                400, "invalid_request", f"batch has {len(items)} messages; the limit is 2500"
            )
        shared = data.get("context")
        sent_at = data.get("sentAt")
        messages = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise Rejected(400, "invalid_request", f"batch item {index} is not an object")
            item.pop("writeKey", None)
            if isinstance(shared, dict):
                own = item.get("context")
                item["context"] = {**shared, **own} if isinstance(own, dict) else dict(shared)
            if sent_at is not None and "sentAt" not in item:
                item["sentAt"] = sent_at
            messages.append(item)
    else:
        data["type"] = SINGLE_PATHS[path]
        messages = [data]
    # Encoded once: the size check and the stored line share it.
    added = len(orjson.dumps({"receivedAt": now})) - 1 if now is not None else 0
    encoded = []
    for index, message in enumerate(messages):
        extra = 0
        if now is not None and "receivedAt" not in message:
            message["receivedAt"] = now
            extra = added
        raw = orjson.dumps(message)
        size = len(raw) - extra
        if size > MAX_MESSAGE_BYTES:
            raise Rejected(
                400,
                "invalid_request",
                f"message {index} is {size} bytes; Segment's limit is 32 KB",
            )
        encoded.append((message, raw))
    return encoded


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


class _Dropped(Exception):
    """The client went away mid-request: nothing to answer."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Bounds an idle keep-alive connection and a client that stalls mid-body.
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle and delayed
        # ACKs add ~40 ms to every keep-alive request.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.server.receiver._handle(self)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/", "/health"):
            self.reply(200, {"success": True, "service": "cmdai listen"})
        else:
            self.reply(404, {"success": False, "code": "not_found", "message": "not found"})

    def _not_allowed(self) -> None:
        self.close_connection = True
        self.reply(405, {"success": False, "code": "method_not_allowed", "message": "use POST"})

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    def reply(self, status: int, body: Mapping[str, Any], *, close: bool = False) -> None:
        payload = orjson.dumps(body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], receiver: Receiver, slots: int) -> None:
        self.receiver = receiver
        self._slots = threading.BoundedSemaphore(slots)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A connection past the limit gets a 503 (Segment clients retry those) rather
        # than a thread of its own: memory stays bounded however many clients connect.
        if not self._slots.acquire(timeout=1.0):
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
                )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.receiver._count_drop()
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class Receiver:
    """A Segment-compatible receiver on `bind`:`port` (0 picks a free port).

    `write_key`: when set, requests must carry it (Basic auth or body `writeKey`).
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
        redact.register(write_key)
        self.out_path = Path(out) if out is not None else None
        self.on_message = on_message
        self.on_batch = on_batch
        self._stats = Stats()
        # Requests answered whose bookkeeping (flags, list, callbacks) is still running.
        self._settling = 0
        # Kept encoded: thousands of retained dicts would make every GC pass slower.
        self._recent: deque[tuple[bytes, tuple[str, ...], str, str]] = deque(maxlen=keep)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember_ids = remember_ids
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._max_connections = max_connections
        self._server: _Server | None = None
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
            self._server = _Server((self.bind, self.port), self, self._max_connections)
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
        # client saw acknowledged is always visible here.
        self._arrived.wait_for(lambda: self._settling == 0, timeout=5)

    def messages(self) -> list[Received]:
        """The last `keep` accepted messages, oldest first (all answered requests' included)."""
        with self._arrived:
            self._settle()
            kept = list(self._recent)
        return [Received(orjson.loads(raw), flags, at, path, raw) for raw, flags, at, path in kept]

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
                Received(orjson.loads(raw), flags, at, path, raw)
                for raw, flags, at, path in self._recent
                if needle is None or needle in raw
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

    def _reject(self, handler: _Handler, rejected: Rejected) -> None:
        with self._lock:
            self._stats.rejected[rejected.status] = self._stats.rejected.get(rejected.status, 0) + 1
        body = {"success": False, "code": rejected.code, "message": rejected.message}
        handler.reply(rejected.status, body, close=rejected.close)

    def _handle(self, handler: _Handler) -> None:
        with self._lock:
            self._stats.requests += 1
        path = handler.path.split("?", 1)[0].rstrip("/")
        try:
            if path != BATCH_PATH and path not in SINGLE_PATHS:
                raise Rejected(404, "not_found", f"no such endpoint: {path or '/'}", close=True)
            raw = _read_body(handler)
            body = decode_body(raw, handler.headers.get("Content-Encoding"))
            now = _now()
            auth_key = basic_auth_key(handler.headers.get("Authorization"))
            messages = _parse(path, body, self.write_key, auth_key, now)
        except Rejected as rejected:
            self._reject(handler, rejected)
            return
        except _Dropped:
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
            self._settling += 1
        try:
            handler.reply(200, {"success": True})
        finally:
            # After the answer: the client builds its next batch meanwhile.
            self._accept(path, messages, now)

    def _store(self, messages: list[tuple[dict[str, Any], bytes]]) -> None:
        """Append the messages to `out` before they are acknowledged."""
        if self._out is None:
            return
        data = b"\n".join(raw for _, raw in messages) + b"\n"
        with self._out_lock:
            if self._out is not None:
                self._out.write(data)
                self._out.flush()

    def _accept(self, path: str, messages: list[tuple[dict[str, Any], bytes]], now: str) -> None:
        accepted = []
        try:
            with self._lock:
                seen = self._seen
                for message, raw in messages:
                    flags = flags_for(message)
                    message_id = message.get("messageId")
                    if isinstance(message_id, str):
                        if message_id in seen:
                            flags += ("duplicate messageId",)
                        else:
                            seen[message_id] = None
                            if len(seen) > self._remember_ids:
                                seen.popitem(last=False)
                    self._recent.append((raw, flags, now, path))
                    if flags:
                        self._stats.flagged += 1
                    if self._wants_objects:
                        accepted.append(Received(message, flags, now, path, raw))
                self._stats.accepted += len(messages)
            self._notify(accepted)
        finally:
            with self._lock:
                self._settling -= 1
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


def _read_body(handler: _Handler) -> bytes:
    headers = handler.headers
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return _read_chunked(handler)
    length_header = headers.get("Content-Length")
    if length_header is None:
        return b""
    try:
        length = int(length_header)
    except ValueError:
        raise Rejected(400, "invalid_request", "invalid Content-Length", close=True) from None
    if length < 0:
        raise Rejected(400, "invalid_request", "invalid Content-Length", close=True)
    if length > MAX_BATCH_BYTES:
        _drain(handler, length)
        raise Rejected(400, "invalid_request", _too_large().message, close=True)
    try:
        data = handler.rfile.read(length)
    except OSError:
        raise _Dropped() from None
    if len(data) < length:
        raise _Dropped()
    return data


def _drain(handler: _Handler, length: int) -> None:
    if length > DRAIN_LIMIT:
        return
    remaining = length
    try:
        while remaining > 0:
            chunk = handler.rfile.read(min(remaining, 65536))
            if not chunk:
                raise _Dropped()
            remaining -= len(chunk)
    except OSError:
        raise _Dropped() from None


def _read_chunked(handler: _Handler) -> bytes:
    rfile = handler.rfile
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            line = rfile.readline(1024)
            if not line:
                raise _Dropped()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise Rejected(400, "invalid_request", "invalid chunked body", close=True) from None
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BATCH_BYTES:
                raise Rejected(400, "invalid_request", _too_large().message, close=True)
            chunk = rfile.read(size)
            if len(chunk) < size:
                raise _Dropped()
            parts.append(chunk)
            rfile.readline(1024)
    except OSError:
        raise _Dropped() from None


# ---------------------------------------------------------------------- local loop


@dataclass(frozen=True)
class LocalResult:
    """A message sent through the real client to an in-process receiver, and what arrived."""

    url: str
    outcome: Outcome
    received: Received | None


def local_round_trip(message: Mapping[str, Any], *, timeout: float = 10.0) -> LocalResult:
    """Start a receiver on a free loopback port, send `message` to it, wait for it."""
    import secrets

    from cmdai_cli.segment_client import Sender

    key = "local-" + secrets.token_hex(12)
    with Receiver(write_key=key, keep=100) as receiver:
        with Sender(key, receiver.url, timeout=timeout) as sender:
            outcome = sender.send_one(message)
        arrived = None
        if outcome.ok and outcome.message_id:
            found = receiver.wait_for(message_id=outcome.message_id, timeout=timeout)
            arrived = found[0] if found else None
        return LocalResult(receiver.url, outcome, arrived)
