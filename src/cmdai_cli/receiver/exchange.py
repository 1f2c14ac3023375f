"""What the receiver's transport hands to its request handling, and takes back.

An `Exchange` is one complete request (method, path, headers, body) and the way to
answer it. The handling (`routes`) sees nothing else of HTTP: no sockets, no parsing,
no timeouts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from cmdai_cli.receiver.protocol import Rejected

__all__ = ["Exchange", "Headers", "read_body"]

# status, header fields, body, close the connection after it
Send = Callable[[int, list[tuple[str, str]], bytes, bool], None]


class Headers:
    """A request's headers, looked up by name whatever its case (`get`, `in`)."""

    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        # h11 gives names in lower case; latin-1 maps every byte, as http.client does.
        self._items = {
            bytes(name).decode("latin-1"): bytes(value).decode("latin-1") for name, value in items
        }

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def items(self) -> list[tuple[str, str]]:
        return list(self._items.items())


class Exchange:
    """One complete request, and the way to answer it, once.

    The handler runs on the transport's event loop, so it must not block: work that
    may (callbacks, printing) goes in `reply(..., then=work)`, which runs in a worker
    thread after the answer is sent; the connection reads its next request only after
    that. `refused` is set when the transport already knows the answer's reason (a body
    over the limit); `read_body` raises it, so that the handler counts and answers it as
    it does every other refusal.
    """

    __slots__ = (
        "_send",
        "answer_headers",
        "body",
        "headers",
        "method",
        "path",
        "refused",
        "replied",
        "then",
    )

    def __init__(
        self,
        method: str,
        path: str,
        headers: Headers,
        body: bytes,
        refused: Rejected | None,
        send: Send,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.refused = refused
        self.replied = False
        self.then: Callable[[], None] | None = None
        # Sent with whatever answer is given (the routes set CORS here first).
        self.answer_headers: Mapping[str, str] = {}
        self._send = send

    def reply(
        self,
        status: int,
        body: Mapping[str, Any] | bytes,
        *,
        close: bool = False,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        then: Callable[[], None] | None = None,
    ) -> None:
        """Answer with `body` (a mapping goes as JSON); `close` ends the connection after.

        `then` runs in a worker thread once the answer is on its way, also when the
        client has gone meanwhile.
        """
        if self.replied:
            return
        self.replied = True
        self.then = then
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        fields = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        fields.extend(self.answer_headers.items())
        if headers:
            fields.extend(headers.items())
        self._send(status, fields, payload, close)


def read_body(exchange: Exchange) -> bytes:
    """The request's body, or the refusal the transport decided on while reading it."""
    if exchange.refused is not None:
        raise exchange.refused
    return exchange.body
