"""The one way long runs stop: Ctrl-C and SIGTERM, in this process, on its main thread.

The second signal's exit at once is tested on real processes (test_listen.py,
test_replay_stop.py)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from cmdai_cli.stopping import Stop, stop_on_signals


def test_a_request_from_another_thread_wakes_the_waiter() -> None:
    stop = Stop()
    try:
        threading.Timer(0.05, stop.request).start()
        assert stop.wait(30) is True
        assert stop.requested
    finally:
        stop.close()


def test_a_wait_without_a_request_ends_at_its_timeout() -> None:
    stop = Stop()
    try:
        started = time.monotonic()
        assert stop.wait(0.05) is False
        assert time.monotonic() - started >= 0.05
    finally:
        stop.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_requests_the_stop_and_the_handlers_come_back(sig: int) -> None:
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with stop_on_signals() as stop:
        os.kill(os.getpid(), sig)
        assert stop.wait(30) is True
    assert {number: signal.getsignal(number) for number in before} == before


def test_with_interrupt_a_signal_also_raises_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt), stop_on_signals(interrupt=True) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        # The handler runs before the next line; a stop that never came would wait.
        stop.wait(30)
    assert stop.requested


def test_a_request_after_the_run_is_harmless() -> None:
    with stop_on_signals() as stop:
        pass
    stop.request()
    assert stop.requested


def test_outside_the_main_thread_no_handler_is_set() -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def run() -> None:
        with stop_on_signals() as stop:
            seen.append(signal.getsignal(signal.SIGTERM))
            stop.request()
            seen.append(stop.wait(30))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert seen == [before, True]
