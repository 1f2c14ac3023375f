"""`cmdai listen`'s loop: serve until Ctrl-C, SIGTERM, enough messages or the time limit."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmdai_cli import _speed, outpaths, redact
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver.server import Limits
from cmdai_cli.receiver.store import Received, Receiver, Stats

DEFAULT_KEEP = 100_000


@dataclass(frozen=True)
class Listening:
    """Where the receiver listens, and whether anyone who reaches it may post."""

    url: str
    bind: str
    unguarded: bool


@dataclass(frozen=True)
class Served:
    """How a serve ended: the final counts, and why it stopped.

    `ended_by` is "signal", "exit-after" (the wanted count arrived) or "max-duration".
    """

    stats: Stats
    ended_by: str


def write_ready_file(path: Path, url: str) -> outpaths.Created | None:
    """Write `url` to `path` atomically: a reader sees no file or the whole URL.

    A device or FIFO is written through. Returns the file made, for removing it at the end.
    """
    try:
        outpaths.write_whole(path, (url + "\n").encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the ready file: {exc.strerror}") from None
    return outpaths.Created.of(path)


def _check(port: int, keep: int, exit_after: int | None, max_duration: float | None) -> None:
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port number (0-65535)")
    if keep < 0:
        raise UsageError(f"--keep {keep}: give 0 or more messages")
    if exit_after is not None and exit_after < 1:
        raise UsageError(f"--exit-after {exit_after}: give 1 or more messages")
    if max_duration is not None and not max_duration > 0:
        raise UsageError(f"--max-duration {max_duration}: give a number of seconds above 0")


def serve(
    *,
    bind: str,
    port: int,
    write_key: str | None,
    out: Path | None,
    reject_wrong_key: bool = False,
    on_batch: Callable[[list[Received]], Any],
    on_start: Callable[[Listening], Any],
    keep: int = DEFAULT_KEEP,
    ready_file: Path | None = None,
    exit_after: int | None = None,
    max_duration: float | None = None,
    on_batch_may_block: bool = True,
    plan: Path | None = None,
) -> Served:
    """Serve on `bind`:`port` until SIGINT or SIGTERM, `exit_after` messages were
    accepted, or `max_duration` seconds passed; return the final counts.

    With `plan` (a tracking plan file), every message that breaks it is flagged with each
    violation (`plan: <kind> at <pointer>`); the plan is read before the port is bound,
    so a bad plan file stops nothing that had started.

    `on_start` is called once the port is bound (the ready file is written after it);
    `on_batch` with what each request brought, after its answer. When it may block (it
    writes to a terminal or a pipe, whose reader can stop reading) it runs in a thread
    of its own, so that a stalled reader stalls no connection; otherwise (a file, as the
    --out file is written) on the server's loop: the hand-over between threads cost
    `listen --json` 7% of its intake (0.88 against 0.95 of a do-nothing sink,
    benchmarks/receiver.py).
    """
    from cmdai_cli.profile import is_loopback

    _check(port, keep, exit_after, max_duration)
    if write_key is not None:
        if not write_key.strip():
            # An empty key would silently turn the check off: say so instead.
            raise UsageError(
                "--write-key is empty: give the key clients must send, "
                "or leave the option out to accept any key"
            )
        redact.register(write_key)
    check = None
    if plan is not None:
        from cmdai_cli.plans import Validator, load_plan, plan_flags

        check = plan_flags(Validator(load_plan(plan)))
    if ready_file is not None:
        # A file left by an earlier run must not announce this one before it serves
        # (only a regular file: a device or FIFO given as the path is not cmdai's).
        left = outpaths.Created.of(ready_file)
        if left is not None:
            left.remove()
    made: list[outpaths.Created | None] = [None]
    stop = threading.Event()
    ended = ["signal"]
    counted = [0]
    count_lock = threading.Lock()

    def batch(received: list[Received]) -> Any:
        try:
            return on_batch(received)
        finally:
            if exit_after is not None:
                with count_lock:
                    counted[0] += len(received)
                    if counted[0] >= exit_after and not stop.is_set():
                        ended[0] = "exit-after"
                        stop.set()

    receiver = Receiver(
        bind=bind,
        port=port,
        write_key=write_key,
        reject_wrong_key=reject_wrong_key,
        out=out,
        on_batch=batch,
        keep=keep,
        limits=Limits(workers=1 if on_batch_may_block else 0),
        check=check,
    )
    receiver.start()
    _speed.settle_long_lived()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    # Both signals set the same event, also when the shell started us ignoring SIGINT.
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_term)
    deadline = None if max_duration is None else time.monotonic() + max_duration
    try:
        guarded = write_key is not None and reject_wrong_key
        on_start(Listening(receiver.url, bind, not is_loopback(bind) and not guarded))
        if ready_file is not None:
            made[0] = write_ready_file(ready_file, receiver.url)
        try:
            while not stop.wait(_tick(deadline)):
                if deadline is not None and time.monotonic() >= deadline:
                    ended[0] = "max-duration"
                    break
        except KeyboardInterrupt:
            pass
    finally:
        receiver.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
        if made[0] is not None:
            made[0].remove()
    return Served(receiver.stats, ended[0])


def _tick(deadline: float | None) -> float:
    # Wakes at least every 0.2 s so that a signal on an old Python is seen promptly.
    if deadline is None:
        return 0.2
    return max(0.0, min(0.2, deadline - time.monotonic()))
