"""`cmdai listen`'s loop: serve until Ctrl-C or SIGTERM, then hand back the counts."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmdai_cli import _speed, redact
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver.store import Received, Receiver, Stats


@dataclass(frozen=True)
class Listening:
    """Where the receiver listens, and whether anyone who reaches it may post."""

    url: str
    bind: str
    unguarded: bool


def serve(
    *,
    bind: str,
    port: int,
    write_key: str | None,
    out: Path | None,
    on_batch: Callable[[list[Received]], Any],
    on_start: Callable[[Listening], Any],
) -> Stats:
    """Serve on `bind`:`port` until SIGINT or SIGTERM; return the final counts.

    `on_start` is called once the port is bound; `on_batch` with what each request
    brought, from the handler threads.
    """
    from cmdai_cli.profile import is_loopback

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port number (0-65535)")
    if write_key is not None:
        redact.register(write_key)
    receiver = Receiver(bind=bind, port=port, write_key=write_key, out=out, on_batch=on_batch)
    receiver.start()
    _speed.settle_long_lived()
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    # Both signals set the same event, also when the shell started us ignoring SIGINT.
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_term)
    try:
        on_start(Listening(receiver.url, bind, not is_loopback(bind) and write_key is None))
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        receiver.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return receiver.stats
