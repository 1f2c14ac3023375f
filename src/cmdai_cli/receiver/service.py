"""The `Receiver`: a local Segment Tracking API, its store behind its routes and server.

It answers as Segment does (`protocol`, through `routes`) and flags what Segment would
accept but later drop (`cmdai_cli.segment.messages.flags_for`). Every accepted message
is written to the `out` file before the 200 is sent, so an acknowledged message is
never lost, then kept and handed to `on_batch` (`store`). Bodies, connections,
deadlines and memory are bounded (`server`, `connection`, `store`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from cmdai_cli import redact
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver.debugger import Planned
from cmdai_cli.receiver.forward import ForwardCounts, Forwarder, Intake
from cmdai_cli.receiver.options import SELF, ListenOptions, is_self
from cmdai_cli.receiver.routes import Routes
from cmdai_cli.receiver.server import Server
from cmdai_cli.receiver.store import Received, Stats, Store
from cmdai_cli.receiver.ui import UI_PATH
from cmdai_cli.values import is_loopback


class Receiver:
    """A Segment-compatible receiver, set up by `options`: `start()` (or `with`), `url`,
    what arrived (`messages()`, `wait_for`, `stats`, `store`), then `stop()`.

    `on_batch` is called with what each request brought, after its answer, in a worker
    thread (it may block: a terminal's reader can stop reading); `check` gives more
    flags for each message. With `options.forward`, every accepted request is also sent
    on (`forward`), and `on_forward` told what became of it; `stop` drains the forwards
    and leaves their counts in `forwarded`. Without `on_batch` nothing after an answer
    can block, and the bookkeeping runs on the server's loop, without a trip through a
    thread.
    """

    def __init__(
        self,
        options: ListenOptions | None = None,
        *,
        on_batch: Callable[[list[Received]], Any] | None = None,
        check: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None,
        planned: Planned | None = None,
        on_forward: Callable[[Intake], Any] | None = None,
    ) -> None:
        self.options = options = options or ListenOptions()
        redact.register(options.write_key)
        # A token the user chose is a secret like the key; one made up here is printed
        # once, as the way in (`listen`'s Debugger line).
        redact.register(options.ui_token)
        # Bound off loopback, the page and the inspection API need a token (`ui.Gate`).
        self.ui_token = options.ui_token
        if self.ui_token is None and not is_loopback(options.bind):
            self.ui_token = secrets.token_urlsafe(18)
        self.port = options.port
        self.store = Store(
            keep=options.keep,
            remember_ids=options.remember_ids,
            out=options.out,
            on_batch=on_batch,
            check=check,
        )
        self.routes = Routes(
            self.store,
            options.write_key,
            options.reject_wrong_key,
            ui_token=self.ui_token,
            planned=planned,
        )
        self.limits = options.limits if on_batch is not None else replace(options.limits, workers=0)
        self._server: Server | None = None
        self.forwarder: Forwarder | None = None
        self.forwarded: ForwardCounts | None = None
        if options.forward is not None:
            self.forwarder = Forwarder(options.forward, on_forward)
            self.routes.forward = self.forwarder.take
            self.store.forward_summary = self.forwarder.summary

    def start(self) -> Receiver:
        """Open `out` and bind; UsageError when either cannot be done."""
        options = self.options
        self.store.open()
        try:
            self._server = Server(
                (options.bind, options.port), self.routes.answer, self.store.count_drop, self.limits
            ).start()
        except OSError as exc:
            self.store.close()
            where = f"{options.bind}:{options.port}"
            raise UsageError(f"cannot listen on {where}: {exc.strerror}") from None
        self.port = self._server.port
        self.routes.own_url = self.url
        if self.forwarder is not None:
            forward = options.forward
            assert forward is not None
            try:
                if is_self(forward.url, options.bind, self.port):
                    raise UsageError(SELF)
                self.forwarder.start()
            except UsageError:
                self._server.stop()
                self._server = None
                self.store.close()
                raise
        return self

    def stop(self, on_drain: Callable[[int], Any] | None = None) -> None:
        """Stop serving; then forward what is still open for up to the drain's seconds
        (`on_drain` is told how many messages that is, first, when there are any)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        forwarder = self.forwarder
        if forwarder is not None and self.forwarded is None and forwarder.started:
            if on_drain is not None and forwarder.counts.pending:
                on_drain(forwarder.counts.pending)
            self.forwarded = forwarder.drain()
        self.store.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        bind = self.options.bind
        host = f"[{bind}]" if ":" in bind else bind
        return f"http://{host}:{self.port}"

    @property
    def ui_url(self) -> str:
        """The Source Debugger's address (with the token when one is needed)."""
        url = self.url + UI_PATH
        return url if self.ui_token is None else f"{url}?token={self.ui_token}"

    # ------------------------------------------------------------------ what arrived

    @property
    def stats(self) -> Stats:
        """Counters, including every request answered so far."""
        return self.store.stats

    def messages(self) -> list[Received]:
        """The kept messages, oldest first (all answered requests' included)."""
        return self.store.messages()

    def wait_for(
        self, count: int = 1, *, message_id: str | None = None, timeout: float = 5.0
    ) -> list[Received]:
        """Wait until `count` messages (or the one with `message_id`) have arrived."""
        return self.store.wait_for(count, message_id=message_id, timeout=timeout)
