"""The Source Debugger's API: views over the kept messages for the page `listen` serves.

    GET /cmdai/page       one page of the kept messages, newest first, filtered
    GET /cmdai/message    one message by its number, with what Command AI records of it
    GET /cmdai/timeline   kept messages over time, counted by type
    GET /cmdai/schema     every event and property seen: counts, types, last seen, plan

A filter (`View`) takes `q` (text anywhere in the raw message, any case), `type`,
`event` (a track's event or a page's name), `user` (userId or anonymousId), `flag` (a
flag, or `any`), `violation` (a `plan:` flag, or `any`), `from` and `to` (receivedAt,
from inclusive, to exclusive). Each kept message has a number (`seq`), counted from the
start or the last reset, which stays its own while it is kept.

Like the inspection API, each view runs over the rows the store keeps encoded and
decodes only what it returns (the schema decodes every kept message: it is asked for
when the schema is looked at, not on every message).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from cmdai_cli.mapping.destination import map_destination
from cmdai_cli.mapping.webhook import RECOMMENDED, map_webhook
from cmdai_cli.plans.check import json_type
from cmdai_cli.receiver.store import Row, Store

__all__ = ["VIEWS", "BadView", "View", "answer_view", "summarize"]

VIEWS = ("page", "message", "timeline", "schema")
PLAN_FLAG = "plan: "
PAGE_SIZE = 100
MAX_PAGE = 1000
# Timeline steps in seconds: the first that gives at most `BARS` bars over the span.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
BARS = 60
_FIELDS = ("q", "type", "event", "user", "flag", "violation", "from", "to", "offset", "limit")

Planned = Callable[[Mapping[str, Any]], bool]


class BadView(ValueError):
    """A query string the views cannot use."""


@dataclass
class View:
    """Which kept messages a view looks at, and which page of them."""

    q: str = ""
    type: str = ""
    event: str = ""
    user: str = ""
    flag: str = ""
    violation: str = ""
    since: str = ""
    until: str = ""
    offset: int = 0
    limit: int = PAGE_SIZE

    def select(self, rows: list[Row], *, timed: bool = True) -> list[int]:
        """The positions of the matching rows, oldest first (`timed=False`: from and to
        are not applied, as the timeline shows every interval)."""
        positions: Sequence[int] = range(len(rows))
        if self.type:
            positions = [n for n in positions if _text(rows[n][4]) == self.type]
        if self.event:
            wanted = self.event
            positions = [
                n for n in positions if _text(rows[n][5]) == wanted or _name_is(rows[n], wanted)
            ]
        if self.user:
            user = self.user
            positions = [n for n in positions if user in (_text(rows[n][6]), _text(rows[n][7]))]
        if self.flag:
            flag = self.flag
            positions = [
                n for n in positions if (rows[n][1] if flag == "any" else flag in rows[n][1])
            ]
        if self.violation:
            violation = self.violation
            positions = [
                n
                for n in positions
                if any(f.startswith(PLAN_FLAG) and (violation in ("any", f)) for f in rows[n][1])
            ]
        if timed and self.since:
            since = self.since
            positions = [n for n in positions if rows[n][2] >= since]
        if timed and self.until:
            until = self.until
            positions = [n for n in positions if rows[n][2] < until]
        if self.q:
            needle = self.q.lower().encode()
            if needle.isascii() and needle.isalnum():
                # Most searches: a word, found in the raw line whatever its case.
                positions = [n for n in positions if needle in rows[n][0].lower()]
            else:
                text = self.q.lower()
                positions = [
                    n for n in positions if text in rows[n][0].decode(errors="replace").lower()
                ]
        return list(positions)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _name_is(row: Row, wanted: str) -> bool:
    # A page or screen has a name, not an event: only those rows are decoded.
    if row[4] not in ("page", "screen"):
        return False
    return wanted.encode() in row[0] and _text(orjson.loads(row[0]).get("name")) == wanted


def parse_view(text: str) -> View:
    params = {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}
    unknown = sorted(set(params) - set(_FIELDS))
    if unknown:
        raise BadView(f"unknown parameter {unknown[0]!r}; use " + ", ".join(_FIELDS))
    view = View(
        q=params.get("q", ""),
        type=params.get("type", ""),
        event=params.get("event", ""),
        user=params.get("user", ""),
        flag=params.get("flag", ""),
        violation=params.get("violation", ""),
        since=params.get("from", ""),
        until=params.get("to", ""),
    )
    for name in ("offset", "limit"):
        if name in params:
            try:
                number = int(params[name])
            except ValueError:
                number = -1
            if number < 0 or (name == "limit" and number > MAX_PAGE):
                raise BadView(f"{name} must be a whole number from 0 (limit: up to {MAX_PAGE})")
            setattr(view, name, number)
    return view


def summarize(seq: int, row: Row) -> dict[str, Any]:
    """What a row of the list shows of a kept message."""
    message = orjson.loads(row[0])
    get = message.get if isinstance(message, dict) else {}.get
    user = get("userId")
    return {
        "seq": seq,
        "id": _text(get("messageId")),
        "receivedAt": row[2],
        "type": _text(get("type")),
        "event": _text(get("event") if get("type") == "track" else get("name")),
        "user": _text(user if user not in (None, "") else get("anonymousId")),
        "flags": list(row[1]),
    }


def page(store: Store, view: View) -> dict[str, Any]:
    base, rows = store.numbered_rows()
    found = view.select(rows)
    newest = found[::-1][view.offset : view.offset + view.limit]
    return {
        "total": len(found),
        "kept": len(rows),
        "received": base + len(rows),
        "offset": view.offset,
        "rows": [summarize(base + n, rows[n]) for n in newest],
    }


def command_ai(message: Any) -> dict[str, Any]:
    """What Command AI records of `message`: `map-payload`'s records for the webhook (the
    whole event as its body) and for the destination with each `deploy` setting."""
    webhook, problem = map_webhook(message, RECOMMENDED)
    calls = []
    for deploy in (False, True):
        record, why = map_destination(message, deploy=deploy)
        calls.append({"deploy": deploy, "record": record, "problem": why})
    return {"webhook": {"record": webhook, "problem": problem}, "destination": calls}


def message(store: Store, seq_text: str) -> tuple[int, dict[str, Any]]:
    try:
        seq = int(seq_text)
    except ValueError:
        return 400, _error("invalid_request", "seq must be a message's number")
    base, rows = store.numbered_rows()
    position = seq - base
    if not 0 <= position < len(rows):
        return 404, _error("not_found", f"message {seq} is not kept (any more)")
    row = rows[position]
    decoded = orjson.loads(row[0])
    return 200, {
        **summarize(seq, row),
        "path": row[3],
        "message": decoded,
        "commandAI": command_ai(decoded),
    }


def _epoch(stamp: str, cache: dict[str, int]) -> int:
    second = stamp[:19]
    found = cache.get(second)
    if found is None:
        try:
            found = calendar.timegm(
                (int(second[:4]), int(second[5:7]), int(second[8:10]),
                 int(second[11:13]), int(second[14:16]), int(second[17:19]), 0, 0, 0)
            )  # fmt: skip
        except ValueError:
            found = 0
        cache[second] = found
    return found


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def timeline(store: Store, view: View) -> dict[str, Any]:
    """The matching messages (whatever their time) counted by type in equal intervals."""
    _, rows = store.numbered_rows()
    found = view.select(rows, timed=False)
    if not found:
        return {"step": 1, "types": [], "bars": []}
    cache: dict[str, int] = {}
    first = _epoch(rows[found[0]][2], cache)
    last = _epoch(rows[found[-1]][2], cache)
    step = next((s for s in STEPS if (last - first) // s < BARS), STEPS[-1])
    start = first - first % step
    counts: dict[int, dict[str, int]] = {}
    types: dict[str, None] = {}
    for n in found:
        row = rows[n]
        slot = (_epoch(row[2], cache) - start) // step
        kind = _text(row[4]) or "(none)"
        types[kind] = None
        bar = counts.setdefault(slot, {})
        bar[kind] = bar.get(kind, 0) + 1
    bars = [
        {
            "from": _iso(start + slot * step),
            "to": _iso(start + (slot + 1) * step),
            "counts": counts.get(slot, {}),
        }
        for slot in range(max(counts) + 1)
    ]
    return {"step": step, "types": sorted(types), "bars": bars}


_PROPERTIES = {"track": "properties", "page": "properties", "screen": "properties"}


def schema(store: Store, planned: Planned | None) -> dict[str, Any]:
    """Every event seen (a track's name; other types by type, pages by name) and the
    properties (traits for identify and group) with their counts, types and last seen;
    with a plan, whether each event is planned and how many of its messages broke it."""
    _, rows = store.numbered_rows()
    events: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        message = orjson.loads(row[0])
        if not isinstance(message, dict):
            continue
        kind = _text(message.get("type")) or "(none)"
        name = message.get("event") if kind == "track" else message.get("name")
        key = (kind, _text(name))
        entry = events.get(key)
        if entry is None:
            entry = events[key] = {
                "type": kind,
                "name": key[1],
                "count": 0,
                "lastSeen": "",
                "broken": 0,
                "planned": None if planned is None else planned(message),
                "properties": {},
            }
        entry["count"] += 1
        entry["lastSeen"] = max(entry["lastSeen"], row[2])
        if any(flag.startswith(PLAN_FLAG) for flag in row[1]):
            entry["broken"] += 1
        fields = message.get(_PROPERTIES.get(kind, "traits"))
        if isinstance(fields, dict):
            properties = entry["properties"]
            for prop, value in fields.items():
                seen = properties.get(prop)
                if seen is None:
                    seen = properties[prop] = {
                        "name": prop,
                        "count": 0,
                        "types": {},
                        "lastSeen": "",
                    }
                seen["count"] += 1
                seen["types"][json_type(value)] = None
                seen["lastSeen"] = max(seen["lastSeen"], row[2])
    listed = []
    for entry in sorted(events.values(), key=lambda e: (-e["count"], e["type"], e["name"])):
        entry["properties"] = [
            {**prop, "types": sorted(prop["types"])}
            for prop in sorted(entry["properties"].values(), key=lambda p: p["name"])
        ]
        listed.append(entry)
    return {"plan": planned is not None, "kept": len(rows), "events": listed}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "code": code, "message": message}


def answer_view(
    store: Store, route: str, query_text: str, planned: Planned | None
) -> tuple[int, dict[str, Any]]:
    """The status and body of `GET /cmdai/<route>?<query_text>` for a route in `VIEWS`."""
    if route == "message":
        params = parse_qs(query_text)
        return message(store, params.get("seq", [""])[-1])
    if route == "schema":
        return 200, schema(store, planned)
    try:
        view = parse_view(query_text)
    except BadView as exc:
        return 400, _error("invalid_request", str(exc))
    if route == "timeline":
        return 200, timeline(store, view)
    return 200, page(store, view)
