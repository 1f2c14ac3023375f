"""Segment's Tracking API as a server must answer it: paths, bodies, keys and limits.

It answers as Segment does: 400 for invalid JSON and over-limit messages or batches,
401 for a wrong write key when one is required. What Segment would accept and later
drop is not refused here; `cmdai_cli.segment.messages.flags_for` names it.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import datetime, timezone
from typing import Any

import orjson

from cmdai_cli.segment.messages import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
)

SINGLE_PATHS = {f"/v1/{kind}": kind for kind in MESSAGE_TYPES}
BATCH_PATH = "/v1/batch"


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


def parse_messages(
    path: str, body: bytes, *, write_key: str | None = None, auth_key: str | None = None
) -> list[dict[str, Any]]:
    """The messages in a decoded request body, or `Rejected` as Segment would answer.

    `auth_key` is the key from Basic auth; with `write_key` set, it or the body's
    `writeKey` must match. Returned messages carry no `writeKey`.
    """
    return [message for message, _ in parse_encoded(path, body, write_key, auth_key, None)]


def parse_encoded(
    path: str, body: bytes, write_key: str | None, auth_key: str | None, now: str | None
) -> list[tuple[dict[str, Any], bytes]]:
    """Messages with their encoded form (with `receivedAt` = `now` added, when given)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Rejected(400, "invalid_request", "invalid JSON") from None
    if not isinstance(data, dict):
        raise Rejected(400, "invalid_request", "the body must be a JSON object")
    body_key = data.pop("writeKey", None)
    if write_key is not None and write_key not in (auth_key, body_key):
        raise Rejected(401, "unauthorized", "invalid write key")
    if path == BATCH_PATH:
        items = data.get("batch")
        if not isinstance(items, list):
            raise Rejected(400, "invalid_request", "batch must be a list of messages")
        if len(items) > MAX_BATCH_MESSAGES:
            raise Rejected(
                400, "invalid_request", f"batch has {len(items)} messages; the limit is 2500"
            )
        shared = data.get("context")
        sent_at = data.get("sentAt")
        messages = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise Rejected(400, "invalid_request", f"batch item {index} is not an object")
            item.pop("writeKey", None)
            if isinstance(shared, dict):
                own = item.get("context")
                item["context"] = {**shared, **own} if isinstance(own, dict) else dict(shared)
            if sent_at is not None and "sentAt" not in item:
                item["sentAt"] = sent_at
            messages.append(item)
    else:
        data["type"] = SINGLE_PATHS[path]
        messages = [data]
    # Encoded once: the size check and the stored line share it.
    added = len(orjson.dumps({"receivedAt": now})) - 1 if now is not None else 0
    encoded = []
    for index, message in enumerate(messages):
        extra = 0
        if now is not None and "receivedAt" not in message:
            message["receivedAt"] = now
            extra = added
        raw = orjson.dumps(message)
        size = len(raw) - extra
        if size > MAX_MESSAGE_BYTES:
            raise Rejected(
                400,
                "invalid_request",
                f"message {index} is {size} bytes; Segment's limit is 32 KB",
            )
        encoded.append((message, raw))
    return encoded
