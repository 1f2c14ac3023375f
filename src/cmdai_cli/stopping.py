"""Ctrl-C and SIGTERM for long runs (listen, replay, expect --within): one way to stop.

SIGTERM (Kubernetes, CI cancellation) means what Ctrl-C means. The first signal asks
the run to stop: `Stop.requested` turns true and whoever waits in `Stop.wait` wakes at
once. A run that blocks where only an exception reaches it (a socket read, a queue:
replay's and expect's) asks for a KeyboardInterrupt in the main thread as well. The run
then stops taking work, finishes or leaves what it must, and reports. A second signal
ends the process at once (exit 130), for a stop that waits on something stuck; a run
that holds what it must not lose (listen's forwards) sets `hurry` instead, which the
second signal calls to cut the wait short, and only a third ends the process.

The handler takes no lock: one held by the main thread it interrupts would never be
released. It sets a flag and writes a byte to a socket that `wait` selects on, and
writes its lines with `os.write`, as the main thread may be writing stderr itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from cmdai_cli.errors import ExitCode

SIGNALS = (signal.SIGINT, signal.SIGTERM)
AT_ONCE = b"cmdai: error: stopped at once\n"


class Stop:
    """A run's stop request: by Ctrl-C or SIGTERM, or by the run itself (`request`)."""

    def __init__(
        self, *, interrupt: bool = False, stopping: bytes = b"", at_once: bytes = AT_ONCE
    ) -> None:
        self.interrupt = interrupt
        self.stopping = stopping
        self.at_once = at_once
        self.requested = False
        self.signals = 0
        # Called (without a lock, from the handler) by the second signal instead of
        # ending the process; what it returns is said on stderr.
        self.hurry: Callable[[], bytes] | None = None
        self._wake, self._waker = socket.socketpair()
        self._waker.setblocking(False)
        self._closed = False
        self._lock = threading.Lock()

    def request(self) -> None:
        """Ask the run to stop (from any thread)."""
        with self._lock:
            self._wake_up()

    def _wake_up(self) -> None:
        self.requested = True
        if not self._closed:
            # A full buffer means a byte is already waiting: the waiter wakes anyway.
            with contextlib.suppress(OSError):
                self._waker.send(b"\0")

    def on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        """The handler for both signals (see the module's docstring)."""
        self.signals += 1
        if self.signals == 2 and self.hurry is not None:
            with contextlib.suppress(OSError):
                os.write(2, self.hurry())
            return
        if self.signals > 1:
            with contextlib.suppress(OSError):
                os.write(2, self.at_once)
            os._exit(int(ExitCode.INTERRUPTED))
        # No lock: `close`, the only other writer of what this reads, runs on this same
        # (the main) thread, so it cannot be half done while this runs.
        self._wake_up()
        if self.stopping:
            with contextlib.suppress(OSError):
                os.write(2, self.stopping)
        if self.interrupt:
            raise KeyboardInterrupt

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a stop is requested, or `timeout` seconds; whether one was."""
        if not self.requested:
            # A byte sent before the select, or during it, ends it at once.
            select.select([self._wake], [], [], timeout)
        return self.requested

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.close()
            self._waker.close()


@contextlib.contextmanager
def stop_on_signals(
    *, interrupt: bool = False, stopping: bytes = b"", at_once: bytes = AT_ONCE
) -> Iterator[Stop]:
    """Ctrl-C and SIGTERM request the stop while the block runs; the old handlers after.

    `interrupt`: the first signal also raises KeyboardInterrupt in the main thread.
    `stopping` is said on stderr at the first signal, `at_once` at the second, which
    ends the process. Outside the main thread no handler can be set: the `Stop` is
    still there for the run to request.
    """
    stop = Stop(interrupt=interrupt, stopping=stopping, at_once=at_once)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Also when the shell started us ignoring SIGINT (a background job in a script).
        previous = {number: signal.signal(number, stop.on_signal) for number in SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        stop.close()
