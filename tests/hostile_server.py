"""A loopback HTTP server that answers every request the same hostile way, and a thief.

Modes (`HostileServer.mode`, changeable between requests):

- `trickle-headers`: a status line, then one byte of a header every 0.2 s, forever;
- `trickle-body`: headers at once (a 1 MB Content-Length), then one byte every 0.2 s;
- `redirect`: 307 to the same path and query on the thief (127.0.0.2, another host);
- `gzip-bomb`: 200 with a gzip body that inflates to 300 MB;
- `huge`: 200 with `Content-Length: 4 GiB`, zeros sent as fast as they are taken;
- `endless`: 200, chunked, chunks forever;
- `json`: 200 with `body` (JSON of the wrong type for whatever was asked).

The thief (`Thief`) listens on 127.0.0.2 and keeps every request that reaches it: a
client that follows a redirect there shows it in `thief.requests`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MODES = ("trickle-headers", "trickle-body", "redirect", "gzip-bomb", "huge", "endless", "json")

_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """300 MB of zeros, gzipped (about 300 KB); made once per test run."""
    global _BOMB
    if _BOMB is None:
        buffer = io.BytesIO()
        zeros = bytes(1 << 20)
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as packed:
            for _ in range(300):
                packed.write(zeros)
        _BOMB = buffer.getvalue()
    return _BOMB


def _read_request(conn: socket.socket) -> bytes | None:
    """The request head (and its body, read and dropped); None when the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


class _Listener:
    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.2)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        self.requests: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Any:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self.threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()
        for thread in self.threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                while not self.stop.is_set():
                    request = _read_request(conn)
                    if request is None:
                        return
                    self.requests.append(request)
                    if not self.answer(conn, request):
                        return
        except OSError:
            return

    def answer(self, conn: socket.socket, request: bytes) -> bool:
        raise NotImplementedError


class Thief(_Listener):
    """Another host: answers 200 `{}` and keeps what it was sent."""

    def __init__(self) -> None:
        super().__init__("127.0.0.2")

    def answer(self, conn: socket.socket, request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        return True


@dataclass
class HostileServer:
    mode: str = "json"
    body: bytes = b"[]"
    thief: Thief = field(default_factory=Thief)

    def __post_init__(self) -> None:
        self._listener = _Listener("127.0.0.1")
        self._listener.answer = self._answer  # type: ignore[method-assign]

    @property
    def url(self) -> str:
        return self._listener.url

    @property
    def requests(self) -> list[bytes]:
        return self._listener.requests

    def __enter__(self) -> HostileServer:
        self.thief.__enter__()
        self._listener.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.__exit__()
        self.thief.__exit__()

    def _drip(self, conn: socket.socket, byte: bytes) -> bool:
        while not self._listener.stop.is_set():
            conn.sendall(byte)
            time.sleep(0.2)
        return False

    def _answer(self, conn: socket.socket, request: bytes) -> bool:
        mode = self.mode
        if mode == "trickle-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            return self._drip(conn, b"a")
        if mode == "trickle-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            conn.sendall(b"Content-Length: 1000000\r\n\r\n")
            return self._drip(conn, b" ")
        if mode == "redirect":
            target = request.split(b" ", 2)[1].decode()
            location = f"{self.thief.url}{target}".encode()
            conn.sendall(
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location + b"\r\n"
                b"Content-Length: 0\r\n\r\n"
            )
            return True
        if mode == "gzip-bomb":
            bomb = gzip_bomb()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\nContent-Length: "
                + str(len(bomb)).encode()
                + b"\r\n\r\n"
            )
            conn.sendall(bomb)
            return True
        if mode == "huge":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 4294967296\r\n\r\n"
            )
            zeros = bytes(1 << 16)
            while not self._listener.stop.is_set():
                conn.sendall(zeros)
            return False
        if mode == "endless":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
            while not self._listener.stop.is_set():
                conn.sendall(chunk)
            return False
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(self.body)).encode()
            + b"\r\n\r\n"
            + self.body
        )
        return True
