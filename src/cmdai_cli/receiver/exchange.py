"""What the receiver's transport hands to its routes, and what it takes back.

A `Request` is one complete request (method, target, headers, body); a `Response` is
the one answer to it, a value the routes return and the connection writes. The routes
see nothing else of HTTP: no sockets, no parsing, no timeouts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import orjson

from cmdai_cli.receiver.protocol import Rejected

__all__ = ["NO_HEADERS", "OK", "Headers", "Request", "Response", "Stream", "json_response"]

NO_HEADERS: Mapping[str, str] = {}
# `{"success": true}`, encoded once: the answer to nearly every request.
OK = orjson.dumps({"success": True})


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


class Request(NamedTuple):
    """One complete request. `refused` is set when the transport already knows the
    answer's reason (a body over the limit): `read_body` raises it, so that the routes
    count and answer it as they do every other refusal."""

    method: str
    target: str  # the path with its query string
    headers: Headers
    body: bytes
    refused: Rejected | None = None

    def read_body(self) -> bytes:
        """The body, or the refusal the transport decided on while reading it."""
        if self.refused is not None:
            raise self.refused
        return self.body


class Stream(Protocol):
    """An answer that goes on (server-sent events): the connection asks it, every
    `every` seconds on the loop, for what to send next (b"" for nothing yet); it must
    not block."""

    every: float

    def poll(self) -> bytes: ...


class Response(NamedTuple):
    """One answer: a `body` of `content_type` with `headers` besides its type and
    length; `close` ends the connection after it. With `stream`, the body is the start
    of an answer that goes on while the client stays (see `Stream`).

    The routes run on the transport's event loop, so they must not block: work that may
    (callbacks, printing) is `then`, which runs once the answer is on its way (in a
    worker thread when the server has them), also when the client has gone meanwhile.
    """

    status: int
    body: bytes = OK
    headers: Mapping[str, str] = NO_HEADERS
    close: bool = False
    then: Callable[[], None] | None = None
    content_type: str = "application/json"
    stream: Stream | None = None


def json_response(
    status: int,
    body: Mapping[str, Any],
    headers: Mapping[str, str] = NO_HEADERS,
    *,
    close: bool = False,
) -> Response:
    return Response(status, orjson.dumps(body), headers, close)
