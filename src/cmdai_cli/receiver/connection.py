"""One client connection of the receiver: h11's state, the request's phase, its deadline.

A connection is `new` (no request yet), `idle` (kept alive after an answer), in its
request's `head` or `body`, `handling` (the request is complete and being answered;
nothing more is read), `streaming` (an answer that goes on, as server-sent events do),
or `closed`. Waiting and sending phases have a deadline fixed when they start, so a
client that sends a byte now and then gains nothing: the headers must all arrive within
`header_timeout` of their first byte, the body within `body_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol

import h11

from cmdai_cli.receiver.exchange import Headers, Request, Response, Stream, json_response
from cmdai_cli.receiver.protocol import Rejected, too_large
from cmdai_cli.segment.messages import MAX_BATCH_BYTES

__all__ = ["Connection", "Limits", "Owner"]

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: 75\r\nRetry-After: 1\r\nAccess-Control-Allow-Origin: *\r\n"
    b"Connection: close\r\n\r\n"
    b'{"success":false,"code":"busy","message":"every connection slot is in use"}'
)


@dataclass(frozen=True)
class Limits:
    """How long and how much a client may take; the defaults suit every Segment library."""

    max_body: int = MAX_BATCH_BYTES
    # Bodies past `max_body` are read and thrown away up to this much, so that the client
    # sees the 400; beyond it the connection is simply closed.
    drain: int = 8 << 20
    max_header_bytes: int = 16 << 10
    header_timeout: float = 10.0  # from a request's first byte to the end of its headers
    body_timeout: float = 30.0  # from the end of the headers to the end of the body
    idle_timeout: float = 15.0  # a keep-alive connection without a request
    write_timeout: float = 30.0  # a client that does not read its answers
    max_connections: int = 512
    # Threads for the work after an answer (0: on the event loop). One keeps it in the
    # order the answers went out (listen prints them in that order).
    workers: int = 1
    max_pending: int = 256  # answers whose after-work waits; past it, a 503


class Owner(Protocol):
    """What a connection needs from the server that accepted it."""

    @property
    def limits(self) -> Limits: ...

    def admit(self, connection: Connection) -> bool: ...

    def forget(self, connection: Connection) -> None: ...

    def on_drop(self) -> None: ...

    def dispatch(self, connection: Connection, request: Request) -> None: ...


class Connection(asyncio.Protocol):
    """One client connection, fed by asyncio, parsed by h11, answered by its server.

    It is the one writer of answers: `respond` puts a `Response` on the wire.
    """

    def __init__(self, server: Owner, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.http = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes
        )
        self.phase = "new"
        self.since = loop.time()
        # When the phase's time is up, and when a client that does not read its answers
        # is let go (loop time); the server's sweep acts on both.
        self.deadline: float | None = None
        self.write_deadline: float | None = None
        self.request: h11.Request | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.refused: Rejected | None = None
        self.reading_paused = False
        self.writing_paused = False

    # ------------------------------------------------------------------ asyncio's calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.server.admit(self):
            self.phase = "closed"
            transport.write(BUSY)
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # The client's next request must not wait for a delayed ACK of our answer.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=64 << 10)
        self.enter("new", self.limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == "closed":
            return
        if phase in ("new", "idle"):
            self.enter("head", self.limits.header_timeout)
        self.http.receive_data(data)
        if phase == "handling":
            # Pipelined requests that arrive while one is answered wait in h11's buffer,
            # and nothing more is read until the next cycle takes them: read on, a
            # client that never reads its answers had 11 MB held within 3 s, each
            # request's parse slower the more was held.
            self.pause_reading()
            return
        self.process()

    def eof_received(self) -> bool | None:
        if self.phase != "closed":
            self.http.receive_data(b"")
            self.process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.phase in ("head", "body"):
            self.server.on_drop()
        self.phase = "closed"
        self.deadline = None
        self.server.forget(self)

    def pause_writing(self) -> None:
        # The client does not read its answers: it has `write_timeout`, then it is let go.
        self.writing_paused = True
        self.write_deadline = self.loop.time() + self.limits.write_timeout
        self.pause_reading()  # no more requests in until it takes its answers

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.write_deadline = None
        if self.phase in ("new", "idle"):
            self.enter(self.phase, self.limits.idle_timeout)
        self.process()

    # ------------------------------------------------------------------ phases

    def enter(self, phase: str, timeout: float | None) -> None:
        # A deadline rather than a timer: no timer to make and cancel on every request.
        self.phase = phase
        self.since = now = self.loop.time()
        self.deadline = None if timeout is None else now + timeout

    def due(self) -> float | None:
        """The first of the deadlines, if any."""
        if self.write_deadline is None:
            return self.deadline
        return (
            self.write_deadline
            if self.deadline is None
            else min(self.deadline, self.write_deadline)
        )

    def expired(self) -> None:
        """A deadline has passed (the server's sweep calls this)."""
        now = self.loop.time()
        stalled = self.write_deadline is not None and now >= self.write_deadline
        if self.phase in ("head", "body") and not stalled:
            self.server.on_drop()
            self.send_error(408, "request_timeout", "the request took too long to arrive")
        self.abort()

    def abort(self) -> None:
        """Let the connection go now, whatever it was doing (not counted as a drop)."""
        self.phase = "closed"
        self.deadline = None
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close once what was written has gone out."""
        self.phase = "closed"
        self.deadline = None
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ reading requests

    def process(self) -> None:
        """Feed h11's events through, until it needs data or a request is being handled."""
        while self.phase not in ("handling", "closed") and not self.writing_paused:
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as exc:
                self.server.on_drop()
                self.send_error(
                    exc.error_status_hint, "invalid_request", f"malformed request: {exc}"
                )
                self.close()
                return
            if event is h11.NEED_DATA:
                self.resume_reading()
                return
            if event is h11.PAUSED:
                self.pause_reading()
                return
            if isinstance(event, h11.Request):
                self.begin(event)
            elif isinstance(event, h11.Data):
                self.take(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete()
            elif isinstance(event, h11.ConnectionClosed):
                self.close()

    def begin(self, request: h11.Request) -> None:
        self.request = request
        self.body = []
        self.size = 0
        self.refused = None
        self.enter("body", self.limits.body_timeout)
        declared = _content_length(request)
        if declared is not None and declared > self.limits.max_body:
            self.refused = Rejected(400, "invalid_request", too_large().message, close=True)
            if declared > self.limits.drain:
                self.complete()  # not worth reading: answer now, then close
                return
        if self.http.they_are_waiting_for_100_continue and self.refused is None:
            self.write(self.http.send(h11.InformationalResponse(status_code=100, headers=[])))

    def take(self, data: bytes) -> None:
        self.size += len(data)
        if self.refused is not None:
            if self.size > self.limits.drain:
                self.complete()
            return
        if self.size > self.limits.max_body:
            self.refused = Rejected(400, "invalid_request", too_large().message, close=True)
            self.body = []
            return
        self.body.append(data)

    def complete(self) -> None:
        request = self.request
        assert request is not None
        # What arrives before this one is answered waits (see `data_received`).
        self.enter("handling", None)
        complete = Request(
            request.method.decode("latin-1"),
            request.target.decode("latin-1"),
            Headers(request.headers),
            b"".join(self.body),
            self.refused,
        )
        self.body = []
        self.server.dispatch(self, complete)

    def next_cycle(self) -> None:
        """The request is answered and its work done: on to the next one, or close."""
        if self.phase in ("closed", "streaming"):
            return
        http = self.http
        if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
            # Closing after this answer, or answered before the whole body came (refused).
            self.close()
            return
        http.start_next_cycle()
        self.request = None
        self.refused = None
        if http.trailing_data[0]:
            self.enter("head", self.limits.header_timeout)  # a pipelined request
        else:
            self.enter("idle", self.limits.idle_timeout)
        self.process()

    # ------------------------------------------------------------------ writing answers

    def respond(self, response: Response) -> None:
        """Write the answer to the request being handled (on the loop's thread).

        Nothing is written once the connection is closed: the client went away, or
        missed a deadline, while its request was handled.
        """
        if self.phase == "closed":
            return
        payload = response.body
        stream = response.stream
        fields = [("Content-Type", response.content_type)]
        if stream is None:
            fields.append(("Content-Length", str(len(payload))))
        fields.extend(response.headers.items())
        if response.close or self.refused is not None:
            fields.append(("Connection", "close"))
        http = self.http
        try:
            data = http.send(
                h11.Response(
                    status_code=response.status, headers=fields, reason=_reason(response.status)
                )
            )
            if self.request is None or self.request.method != b"HEAD":
                # An answer to HEAD has the headers of the answer to GET, and no body.
                data = (data or b"") + (http.send(h11.Data(data=payload)) or b"")
            if stream is None:
                data = (data or b"") + (http.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            # h11 refuses an answer in the state the client left it in.
            self.abort()
            return
        self.write(data)
        if stream is not None:
            # Nothing more is read from a client that is being streamed to; it goes
            # when it closes, or when the server stops.
            self.enter("streaming", None)
            self.loop.call_later(stream.every, self.feed, stream)

    def feed(self, stream: Stream) -> None:
        """Send what `stream` has now, and ask it again in a while, until the end."""
        if self.phase != "streaming":
            return
        if not self.writing_paused:
            # A client that does not keep up gets fewer, larger pieces: nothing piles up.
            data = stream.poll()
            if data:
                try:
                    self.write(self.http.send(h11.Data(data=data)))
                except h11.LocalProtocolError:
                    self.abort()
                    return
        self.loop.call_later(stream.every, self.feed, stream)

    def send_error(self, status: int, code: str, message: str) -> None:
        body = {"success": False, "code": code, "message": message}
        self.respond(json_response(status, body, close=True))

    def write(self, data: bytes | None) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def _reason(status: int) -> bytes:
    return _REASONS.get(status, b"")
