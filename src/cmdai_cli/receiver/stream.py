"""The Source Debugger's live list: server-sent events of what arrived, batched.

`GET /cmdai/stream` is answered `text/event-stream` and stays open; every `EVERY`
seconds the connection asks its `Feed` what arrived since the last time and sends one
event for all of it, however many messages that was:

    event: batch
    data: {"received": 5012, "new": 1250, "rows": [<the newest 50, newest first>]}

`received` counts from the start or the last reset (a smaller number than before, or
`event: reset`, means the kept messages were forgotten); `rows` are what a row of the
list shows (`debugger.summarize`). A client that reads slowly is asked less often (see
`Connection.feed`), and a quiet stream sends a comment now and then, so that a proxy or
the browser keeps it open.
"""

from __future__ import annotations

import orjson

from cmdai_cli.receiver.debugger import summarize
from cmdai_cli.receiver.store import Store

EVERY = 0.2  # seconds: 5 events a second whatever the rate of messages
ROWS = 50
KEEP_ALIVE = 15.0  # seconds between comments on a quiet stream

# What the page is told at once: the stream works, and it should retry after a drop.
OPENING = b"retry: 1000\n: cmdai listen\n\n"


class Feed:
    """One client's view of the store's newest messages, polled on the server's loop."""

    every = EVERY

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen, _ = store.tail(0)
        self.quiet = 0.0

    def poll(self) -> bytes:
        received, newest = self.store.tail(ROWS)
        if received == self.seen:
            self.quiet += self.every
            if self.quiet < KEEP_ALIVE:
                return b""
            self.quiet = 0.0
            return b": still here\n\n"
        self.quiet = 0.0
        if received < self.seen:
            # Forgotten (POST /cmdai/reset): the page starts over.
            self.seen = received
            return b"event: reset\ndata: {}\n\n"
        new = received - self.seen
        self.seen = received
        shown = newest[: min(new, ROWS)]
        rows = [summarize(received - 1 - n, row) for n, row in enumerate(shown)]
        data = orjson.dumps({"received": received, "new": new, "rows": rows})
        return b"event: batch\ndata: " + data + b"\n\n"
