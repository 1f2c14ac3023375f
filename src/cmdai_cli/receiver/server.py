"""The receiver's HTTP transport: asyncio and h11 in a thread of its own, bounded.

One event loop owns every connection (`connection`), so a connection costs a few
kilobytes, not a thread, and a client that sends slowly or not at all holds nothing
anyone else needs: it is cut off at its deadline. When every connection slot is taken,
an idle keep-alive connection, else one already answered, else the slowest to send is
closed to make room. A complete request goes to `handle` as a `Request`, which gives
back its `Response` (see `exchange`); the work that answer leaves for after it
(listen's printing) runs in a worker thread, in the order the answers went out, while
the connection goes on to its next request; when too much of it waits, requests are
answered 503 until it drains. Without workers it runs on the loop, right after the
answer went out.

Bodies past `Limits.max_body` are refused without being kept. Chunked bodies,
`Expect: 100-continue`, pipelining and HTTP/1.0 are h11's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from cmdai_cli.receiver.connection import Connection, Limits
from cmdai_cli.receiver.exchange import Request, Response, json_response

__all__ = ["Limits", "Server"]

log = logging.getLogger("cmdai")

_SERVER_ERROR = json_response(
    500, {"success": False, "code": "server_error", "message": "internal error"}, close=True
)
_BUSY = json_response(
    503,
    {"success": False, "code": "busy", "message": "too much work waiting; retry"},
    {"Retry-After": "1"},
)
# Which connections may be closed to make room for a new one, least missed first.
_EVICTABLE = {"idle": 0, "new": 1, "head": 1, "body": 1}


class Server:
    """An HTTP/1.1 server on `address`: `start()`, then `port`, then `stop()`.

    `handle(request)` is called on the event loop for every complete request, must not
    block, and gives the answer (see `Response`); a 500 goes out if it raises.
    `dropped()` is called for a connection that ended mid-request: the client went
    away, broke the protocol, missed a deadline or was closed to make room.
    """

    def __init__(
        self,
        address: tuple[str, int],
        handle: Callable[[Request], Response],
        dropped: Callable[[], None],
        limits: Limits | None = None,
    ) -> None:
        self.address = address
        self.handle = handle
        self.dropped = dropped
        self.limits = limits or Limits()
        self.port = address[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[Connection] = set()
        self._work: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Server:
        """Bind and serve; OSError when the address cannot be bound."""
        ready: Future[int] = Future()
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(
                        lambda: Connection(self, loop),
                        self.address[0],
                        self.address[1],
                        backlog=128,
                        reuse_address=True,
                    )
                )
            except OSError as exc:
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(self._server.sockets[0].getsockname()[1])
            loop.call_soon(self._sweep)
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="cmdai-receiver", daemon=True)
        self._thread.start()
        try:
            self.port = ready.result()
        except OSError:
            self._thread.join()
            raise
        self._thread.name = f"cmdai-receiver-{self.port}"
        for number in range(self.limits.workers):
            # Daemon threads: a callback stuck on a blocked terminal must not keep the
            # process alive after a stop.
            worker = threading.Thread(
                target=self._worker, name=f"cmdai-receiver-{self.port}-{number}", daemon=True
            )
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._close_all)
            thread.join(timeout=5)
        self._thread = self._loop = None
        for _ in self._workers:
            self._work.put(None)
        deadline = time.monotonic() + 5
        for worker in self._workers:
            # The work queued before the stop is done first, unless it hangs.
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        self._workers = []

    def _close_all(self) -> None:
        assert self._loop is not None
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        self._loop.stop()

    def _sweep(self) -> None:
        """Let go of every connection whose phase's time is up; again in a moment."""
        assert self._loop is not None
        now = self._loop.time()
        for connection in list(self._connections):
            due = connection.due()
            if due is not None and now >= due and connection.phase != "closed":
                connection.expired()
        self._loop.call_later(self._sweep_every, self._sweep)

    @property
    def _sweep_every(self) -> float:
        # Often enough that no deadline is overshot by more than half of itself.
        limits = self.limits
        shortest = min(
            limits.header_timeout, limits.body_timeout, limits.idle_timeout, limits.write_timeout
        )
        return max(0.01, min(0.5, shortest / 2))

    # ------------------------------------------------------------------ capacity

    def admit(self, newcomer: Connection) -> bool:
        """Make room for `newcomer` by closing the connection that matters least, or refuse.

        That is the longest idle keep-alive one, else the one that has waited longest for
        its request to arrive, so that a client that sends at once is the last to go.
        """
        if len(self._connections) >= self.limits.max_connections:
            waiting = [c for c in self._connections if c.phase in _EVICTABLE]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda c: (_EVICTABLE[c.phase], c.since))
            if oldest.phase in ("head", "body"):  # cut off mid-request
                self.on_drop()
            oldest.abort()
            self._connections.discard(oldest)
        self._connections.add(newcomer)
        return True

    def forget(self, connection: Connection) -> None:
        self._connections.discard(connection)

    def on_drop(self) -> None:
        self.dropped()

    # ------------------------------------------------------------------ requests

    def dispatch(self, connection: Connection, request: Request) -> None:
        """Answer `request` and queue its after-work; the connection goes on at once.

        Waiting for the after-work handed each request from thread to thread twice: with
        one client posting batch after batch, `listen --json --out` took in 0.87 of a
        do-nothing sink's rate that way, and 0.95 without the wait
        (benchmarks/receiver.py).
        """
        if self._workers and self._work.qsize() >= self.limits.max_pending:
            # The after-work is stuck (a blocked terminal, a slow disk): accepting more
            # would only pile it up in memory. Segment's clients retry a 503.
            response = _BUSY
        else:
            try:
                response = self.handle(request)
            except Exception:
                log.debug("a request handler failed", exc_info=True)
                response = _SERVER_ERROR
        connection.respond(response)
        then = response.then
        if then is not None:
            if self._workers:
                self._work.put(then)
            else:
                _run(then)
        # Called soon rather than now: pipelined requests must not nest calls.
        assert self._loop is not None
        self._loop.call_soon(connection.next_cycle)

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            _run(item)


def _run(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:
        log.debug("work after an answer failed", exc_info=True)
