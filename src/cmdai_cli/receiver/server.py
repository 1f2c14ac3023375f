"""The receiver's HTTP server: connections, request bodies and answers, all bounded.

A `Server` hands each request, whatever its method, to its `on_request` callable and
counts a connection that ended in an error through `on_drop`. Bodies past the batch
limit are refused without being kept; connections past `slots` get a 503; a bad
request never stops the server.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from cmdai_cli.receiver.protocol import Rejected, too_large
from cmdai_cli.segment.messages import MAX_BATCH_BYTES

# Bodies past the limit are read and discarded up to this much so the client sees the
# 400; beyond it the connection is simply closed.
DRAIN_LIMIT = 8 * 1024 * 1024

log = logging.getLogger("cmdai")


class Dropped(Exception):
    """The client went away mid-request: nothing to answer."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Bounds an idle keep-alive connection and a client that stalls mid-body.
    timeout = 30
    server: Server
    # Sent with every answer; the request layer sets them (CORS) before it replies.
    answer_headers: Mapping[str, str] = {}

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle and delayed
        # ACKs add ~40 ms to every keep-alive request.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        self.server.on_request(self)

    do_POST = do_GET = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = _any

    def reply(self, status: int, body: Mapping[str, Any] | bytes, *, close: bool = False) -> None:
        """Answer with `body` as JSON (bytes: already encoded)."""
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in self.answer_headers.items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        on_request: Callable[[Handler], None],
        on_drop: Callable[[], None],
        slots: int,
    ) -> None:
        self.on_request = on_request
        self.on_drop = on_drop
        self._slots = threading.BoundedSemaphore(slots)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A connection past the limit gets a 503 (Segment clients retry those) rather
        # than a thread of its own: memory stays bounded however many clients connect.
        if not self._slots.acquire(timeout=1.0):
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Retry-After: 1\r\nAccess-Control-Allow-Origin: *\r\n"
                    b"Connection: close\r\n\r\n"
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
        self.on_drop()
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


def read_body(handler: Handler) -> bytes:
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
        raise Rejected(400, "invalid_request", too_large().message, close=True)
    try:
        data = handler.rfile.read(length)
    except OSError:
        raise Dropped() from None
    if len(data) < length:
        raise Dropped()
    return data


def _drain(handler: Handler, length: int) -> None:
    if length > DRAIN_LIMIT:
        return
    remaining = length
    try:
        while remaining > 0:
            chunk = handler.rfile.read(min(remaining, 65536))
            if not chunk:
                raise Dropped()
            remaining -= len(chunk)
    except OSError:
        raise Dropped() from None


def _read_chunked(handler: Handler) -> bytes:
    rfile = handler.rfile
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            line = rfile.readline(1024)
            if not line:
                raise Dropped()
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
                raise Rejected(400, "invalid_request", too_large().message, close=True)
            chunk = rfile.read(size)
            if len(chunk) < size:
                raise Dropped()
            parts.append(chunk)
            rfile.readline(1024)
    except OSError:
        raise Dropped() from None
