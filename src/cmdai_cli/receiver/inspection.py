"""The inspection API beside the Tracking API: what a test or `cmdai expect` asks a receiver.

    GET  /cmdai/summary    counts by type, event name and flag; rejected requests
    GET  /cmdai/messages   kept messages as a JSON array, oldest first, filtered by
                           type, event, userId, anonymousId (each repeatable: any of),
                           flagged=true|false, since (receivedAt, inclusive), limit
                           (the newest N)
    POST /cmdai/reset      forget what was received (the --out file is kept)

Each message is `{"receivedAt", "path", "flags", "message"}`, as `listen --json` prints
it. Independent of the HTTP transport: `inspect` takes the method, path and query string
and gives back a status and a body.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from cmdai_cli.receiver.store import Query, Row, Store, row_json, stamp

PREFIX = "/cmdai/"
FILTERS = ("type", "event", "userId", "anonymousId", "flagged", "since", "limit")


class BadQuery(ValueError):
    """A query string the messages route cannot use."""


def parse_query(text: str) -> Query:
    """The `GET /cmdai/messages` filters from a query string."""
    params = parse_qs(text, keep_blank_values=True)
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        raise BadQuery(f"unknown filter {unknown[0]!r}; use " + ", ".join(FILTERS))
    query = Query(
        types=params.get("type", []),
        events=params.get("event", []),
        user_ids=params.get("userId", []),
        anonymous_ids=params.get("anonymousId", []),
    )
    if "flagged" in params:
        value = params["flagged"][-1].lower()
        if value not in ("true", "false"):
            raise BadQuery("flagged must be true or false")
        query.flagged = value == "true"
    if "since" in params:
        try:
            query.since = stamp(params["since"][-1])
        except ValueError:
            raise BadQuery("since must be an ISO-8601 time, as receivedAt") from None
    if "limit" in params:
        try:
            query.limit = int(params["limit"][-1])
        except ValueError:
            query.limit = -1
        if query.limit < 0:
            raise BadQuery("limit must be a whole number, 0 or more")
    return query


def encode_rows(rows: list[Row]) -> bytes:
    """A JSON array of kept rows, from their already encoded messages."""
    return b"[" + b",".join(map(row_json, rows)) + b"]"


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"success": False, "code": code, "message": message}


def inspect(store: Store, method: str, target: str) -> tuple[int, dict[str, Any] | bytes]:
    """The status and body for a request to `target` (a path under /cmdai/, with its query)."""
    path, _, query_text = target.partition("?")
    route = path[len(PREFIX) :].rstrip("/")
    expected = {"summary": "GET", "messages": "GET", "reset": "POST"}.get(route)
    if expected is None:
        return _error(404, "not_found", f"no such endpoint: {path}")
    if method != expected:
        return _error(405, "method_not_allowed", f"use {expected} {PREFIX}{route}")
    if route == "summary":
        return 200, store.summary()
    if route == "reset":
        return 200, {"success": True, "forgot": store.forget()}
    try:
        query = parse_query(query_text)
    except BadQuery as exc:
        return _error(400, "invalid_request", str(exc))
    return 200, encode_rows(query.select_rows(store.rows()))
