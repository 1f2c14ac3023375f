"""What the receiver answers: a request's method, path, headers and body in, one answer out.

The transport (`server`) hands every complete request here as an `Exchange`, on its
event loop (so nothing here may block: slow work goes after the answer, see
`Exchange.reply`); the `Receiver` (`store`) keeps what is accepted. New endpoints go in
`answer`, and need to know nothing of sockets or timeouts.

- /cmdai/...: the inspection API (`inspection`), with CORS and preflight as below
- POST to Segment's Tracking API paths, analytics.js's short ones included: answered as
  Segment does (`protocol`); analytics.js's metrics are read and acknowledged
- OPTIONS, GET health and the CDN settings document, with CORS on every answer
  (`browser`); anything else: 404, or 405 for a method no route takes
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cmdai_cli.receiver import browser, inspection
from cmdai_cli.receiver.exchange import Exchange, read_body
from cmdai_cli.receiver.protocol import (
    BATCH_PATHS,
    METRICS_PATH,
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


def answer(receiver: Receiver, exchange: Exchange) -> None:
    """Answer `exchange` (exactly once) and store what it brought."""
    method = exchange.method
    headers = exchange.headers
    # The inspection API too: a test page may ask it what its own calls brought.
    exchange.answer_headers = browser.cors_headers(
        headers.get("Origin"),
        headers.get("Access-Control-Request-Headers"),
        preflight=method == "OPTIONS",
    )
    if exchange.path.startswith(inspection.PREFIX):
        if method == "OPTIONS":
            exchange.reply(200, {"success": True})
            return
        status, body = inspection.answer(receiver, method, exchange.path)
        # A reset whose body was refused is still a reset; the connection goes, though.
        exchange.reply(status, body, close=exchange.refused is not None)
        return
    path = exchange.path.split("?", 1)[0].rstrip("/")
    if method != "POST":
        browser.answer_other(exchange, method, path, receiver.write_key, receiver.url)
        return
    tracking_api(receiver, exchange, path)


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
        if path == METRICS_PATH:
            # analytics.js's delivery metrics: read and acknowledged, not messages.
            read_body(exchange)
            exchange.reply(200, {"success": True})
            return
        if path not in BATCH_PATHS and path not in SINGLE_PATHS:
            raise Rejected(404, "not_found", f"no such endpoint: {path or '/'}", close=True)
        body = decode_body(read_body(exchange), headers.get("Content-Encoding"))
        now = now_stamp()
        auth_key = basic_auth_key(headers.get("Authorization"))
        messages = parse_encoded(
            path, body, receiver.write_key, auth_key, now, receiver.reject_wrong_key
        )
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
