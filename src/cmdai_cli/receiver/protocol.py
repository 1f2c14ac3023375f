"""Segment's Tracking API as a server must answer it: paths, bodies, keys and limits.

It answers as Segment does: 400 for invalid JSON and over-limit messages or batches.
A wrong write key is accepted and flagged: Segment's Tracking API answers 200 to any key
and drops the data later (segmentio/analytics-go issue 205, analytics-node issues 59 and
235); `reject_wrong_key` gives a 401 instead. What Segment would accept and later drop
is not refused here; `cmdai_cli.segment.messages.flags_for` names it.

Paths: the server libraries post to `/v1/batch` (or `/v1/import`, its other name) and
`/v1/{identify,track,...}`; analytics.js (`@segment/analytics-next`,
`packages/browser/src/plugins/segmentio/index.ts`) posts a single call to `/v1/` plus
the first letter of its type and, with its batching delivery
(`batched-dispatcher.ts`), to `/v1/b`; it sends `text/plain` with `writeKey` in the body.
Its metrics (`packages/browser/src/core/stats/remote-metrics.ts`) go to `/v1/m`.

Sizes are measured per message as its sender wrote it, compactly re-encoded, before the
batch's `context` and `sentAt` are merged in: analytics-python measures each message on
its own (`segment/analytics/consumer.py`, `len(json.dumps(item))` against `32 << 10`,
with spaces after separators, so never less than the compact form) and analytics-node
each event (`packages/node/src/plugins/segmentio/context-batch.ts`, against 32 * 1024).
Segment states "32 KB" and "500 KB": read as 1024s they are the SDKs' own thresholds,
so only past them is a request refused; between the decimal and the binary reading (the
grey zone) messages are accepted and flagged.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import datetime, timezone
from typing import Any

import orjson

from cmdai_cli.js_json import compact, loads
from cmdai_cli.segment.messages import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
)

SINGLE_PATHS = {f"/v1/{kind}": kind for kind in MESSAGE_TYPES}
# analytics.js's short paths: the first letter of the type (segmentio plugin's `send`).
SINGLE_PATHS.update({f"/v1/{kind[0]}": kind for kind in MESSAGE_TYPES})
BATCH_PATH = "/v1/batch"
BATCH_PATHS = frozenset((BATCH_PATH, "/v1/b", "/v1/import"))
# analytics.js's own delivery metrics: answered, never stored as messages.
METRICS_PATH = "/v1/m"

# The decimal readings of Segment's stated limits: past them a message or batch is in
# the grey zone, accepted (the SDKs send it) and flagged.
STATED_MESSAGE_BYTES = 32_000
STATED_BATCH_BYTES = 500_000
WRONG_KEY = "wrong write key"
NEAR_MESSAGE_LIMIT = "message over 32,000 bytes"
NEAR_BATCH_LIMIT = "batch over 500,000 bytes"


class Rejected(Exception):
    """A request answered with an error status, as Segment would answer it."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close


def now_stamp() -> str:
    """The current time as Segment writes `receivedAt`: UTC, milliseconds, `Z`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def basic_auth_key(header: str | None) -> str | None:
    """The write key from `Authorization: Basic base64(key:)`, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


def decode_body(raw: bytes, encoding: str | None) -> bytes:
    """The request body after Content-Encoding, refusing what would exceed the batch limit."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        data = raw
    elif enc in ("gzip", "x-gzip"):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(raw, MAX_BATCH_BYTES + 1)
        except zlib.error as exc:
            raise Rejected(400, "invalid_request", f"invalid gzip body: {exc}") from None
        if len(data) > MAX_BATCH_BYTES:
            raise too_large()
        if not inflater.eof:
            raise Rejected(400, "invalid_request", "truncated gzip body")
    else:
        raise Rejected(400, "invalid_request", f"unsupported Content-Encoding {enc!r}")
    if len(data) > MAX_BATCH_BYTES:
        raise too_large()
    return data


def too_large() -> Rejected:
    return Rejected(400, "invalid_request", "the request is over Segment's 500 KB batch limit")


def parse_encoded(
    path: str,
    body: bytes,
    write_key: str | None,
    auth_key: str | None,
    now: str | None,
    reject_wrong_key: bool = False,
) -> list[tuple[dict[str, Any], bytes, tuple[str, ...]]]:
    """Messages with their encoded form (with `receivedAt` = `now` added, when given)
    and the flags the request itself earned (a wrong key, a size in the grey zone).

    With `write_key` set, a request whose Basic auth and body `writeKey` both differ
    from it is flagged, or refused with 401 when `reject_wrong_key`.
    """
    # As JSON.parse reads it: analytics.js sends lone surrogates (a cut emoji) as escapes.
    try:
        data = loads(body)
    except orjson.JSONDecodeError:
        raise Rejected(400, "invalid_request", "invalid JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "invalid_request", "the body must be a JSON object")
    body_key = data.pop("writeKey", None)
    shared_flags: tuple[str, ...] = ()
    if write_key is not None and write_key not in (auth_key, body_key):
        if reject_wrong_key:
            raise Rejected(401, "unauthorized", "invalid write key")
        shared_flags += (WRONG_KEY,)
    if len(body) > STATED_BATCH_BYTES:
        shared_flags += (NEAR_BATCH_LIMIT,)
    if path in BATCH_PATHS:
        items = data.get("batch")
        if not isinstance(items, list):
            raise Rejected(400, "invalid_request", "batch must be a list of messages")
        if len(items) > MAX_BATCH_MESSAGES:
            raise Rejected(
                400, "invalid_request", f"batch has {len(items)} messages; the limit is 2500"
            )
        shared = data.get("context")
        sent_at = data.get("sentAt")
        sent: list[dict[str, Any]] = []
        merged: list[int] = []
        # The bytes `"sentAt":...` adds to a message that gets it (with its comma).
        sent_at_bytes = len(orjson.dumps({"sentAt": sent_at})) - 1
        messages = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise Rejected(400, "invalid_request", f"batch item {index} is not an object")
            item.pop("writeKey", None)
            sent.append(item)
            # A batch context is merged into a copy: the item stays as sent, to be
            # measured if it looks large. A sentAt is added in place and its bytes
            # counted off, as receivedAt's are.
            if isinstance(shared, dict):
                own = item.get("context")
                item = {**item, "context": {**shared, **own} if isinstance(own, dict) else shared}
            added_here = 0
            if sent_at is not None and "sentAt" not in item:
                item["sentAt"] = sent_at
                added_here = sent_at_bytes
            merged.append(added_here)
            messages.append(item)
    else:
        data["type"] = SINGLE_PATHS[path]
        messages = sent = [data]
        merged = [0]
    # Encoded once: the size check and the stored line share it. Merging only adds, so
    # the merged size bounds the size as sent, which is measured only when it must be.
    added = len(orjson.dumps({"receivedAt": now})) - 1 if now is not None else 0
    encoded = []
    for index, message in enumerate(messages):
        extra = merged[index]
        if now is not None and "receivedAt" not in message:
            message["receivedAt"] = now
            extra += added
        raw = compact(message)
        flags = shared_flags
        if len(raw) - extra > STATED_MESSAGE_BYTES:
            size = _size_as_sent(sent[index], message, len(raw) - extra)
            if size > MAX_MESSAGE_BYTES:
                raise Rejected(
                    400,
                    "invalid_request",
                    f"message {index} is {size} bytes; Segment's limit is 32 KB",
                )
            if size > STATED_MESSAGE_BYTES:
                flags += (NEAR_MESSAGE_LIMIT,)
        encoded.append((message, raw, flags))
    return encoded


def _size_as_sent(sent: dict[str, Any], stored: dict[str, Any], stored_size: int) -> int:
    """The compact size of a message before the request's fields were merged into it.

    `stored_size` already leaves out what was added in place; a copy (a batch context
    was merged) means measuring the message as it came.
    """
    if sent is stored:
        return stored_size
    return len(compact(sent))
