"""What the receiver answers: a request's method, path, headers and body in, one answer out.

The transport (`server`) hands every complete request here as an `Exchange`, on its
event loop (so nothing here may block: slow work goes after the answer, see
`Exchange.reply`); the `Receiver` (`store`) keeps what is accepted. New endpoints go in
`answer`, and need to know nothing of sockets or timeouts.

- POST /v1/{track,identify,page,screen,group,alias} and /v1/batch: Segment's Tracking
  API, answered as Segment does (`protocol`)
- GET / and /health: a liveness answer
- anything else: 404, or 405 for a method that no route takes
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cmdai_cli.receiver.exchange import Exchange, read_body
from cmdai_cli.receiver.protocol import (
    BATCH_PATH,
    SINGLE_PATHS,
    Rejected,
    basic_auth_key,
    decode_body,
    now_stamp,
    parse_encoded,
)

if TYPE_CHECKING:
    from cmdai_cli.receiver.store import Receiver

log = logging.getLogger("cmdai")

HEALTH_PATHS = ("/", "/health")


def answer(receiver: Receiver, exchange: Exchange) -> None:
    """Answer `exchange` (exactly once) and store what it brought."""
    path = exchange.path.split("?", 1)[0]
    if exchange.method in ("GET", "HEAD"):
        if path in HEALTH_PATHS:
            exchange.reply(200, {"success": True, "service": "cmdai listen"})
        else:
            exchange.reply(404, {"success": False, "code": "not_found", "message": "not found"})
        return
    if exchange.method != "POST":
        exchange.reply(
            405,
            {"success": False, "code": "method_not_allowed", "message": "use POST"},
            close=True,
            headers={"Allow": "GET, POST"},
        )
        return
    tracking_api(receiver, exchange, path.rstrip("/"))


def refuse(receiver: Receiver, exchange: Exchange, rejected: Rejected) -> None:
    """Answer a refusal as Segment words it, and count it."""
    receiver.count_rejected(rejected.status)
    body = {"success": False, "code": rejected.code, "message": rejected.message}
    exchange.reply(rejected.status, body, close=rejected.close)


def tracking_api(receiver: Receiver, exchange: Exchange, path: str) -> None:
    """A POST to Segment's Tracking API: refused as Segment would, or stored, then 200."""
    receiver.count_request()
    headers = exchange.headers
    try:
        if path != BATCH_PATH and path not in SINGLE_PATHS:
            raise Rejected(404, "not_found", f"no such endpoint: {path or '/'}", close=True)
        body = decode_body(read_body(exchange), headers.get("Content-Encoding"))
        now = now_stamp()
        auth_key = basic_auth_key(headers.get("Authorization"))
        messages = parse_encoded(path, body, receiver.write_key, auth_key, now)
    except Rejected as rejected:
        refuse(receiver, exchange, rejected)
        return
    try:
        receiver.store(messages)
    except OSError as exc:
        log.warning("could not store a request: %s", exc.strerror)
        refuse(receiver, exchange, Rejected(500, "server_error", "could not store the messages"))
        return
    receiver.acknowledge(exchange, path, messages, now)
