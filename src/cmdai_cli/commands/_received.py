"""Received messages as rows, the way Segment's Source Debugger lists them.

Shared by `listen` (every message as it arrives) and `send-test --local` (the one sent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cmdai_cli.printable import printable

if TYPE_CHECKING:
    from cmdai_cli.receiver import Received

COLUMNS = (("time", 12), ("type", 9), ("event / name", 32), ("user", 30))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def what(message: dict[str, Any]) -> str:
    """The Source Debugger's summary of a message: event, page name, group or alias."""
    kind = message.get("type")
    if kind == "track":
        return str(message.get("event") or "")
    if kind in ("page", "screen"):
        return str(message.get("name") or message.get("category") or "")
    if kind == "group":
        return f"group {message.get('groupId', '')}"
    if kind == "alias":
        return f"{message.get('previousId', '')} -> {message.get('userId', '')}"
    return ""


def who(message: dict[str, Any]) -> str:
    if message.get("userId"):
        return str(message["userId"])
    if message.get("anonymousId"):
        return f"anon {message['anonymousId']}"
    return "-"


def header_line() -> str:
    return " ".join(f"{name:<{width}}" for name, width in COLUMNS) + " flags"


def row_line(received: Received) -> str:
    message = received.message
    cells = (
        received.received_at[11:23],
        printable(message.get("type", "?")),
        printable(what(message)),
        printable(who(message)),
    )
    text = " ".join(f"{_cut(c, w):<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True))
    return text + " " + ", ".join(received.flags)
