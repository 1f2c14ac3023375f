"""Messages as people see them: received ones as rows, the way Segment's Source Debugger
lists them, and what became of a sent test event.

Shared by `listen` (every message as it arrives), `send-test` and `connect --send-test`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cmdai_cli import output
from cmdai_cli.printable import printable
from cmdai_cli.values import is_loopback

if TYPE_CHECKING:
    from cmdai_cli.probe import Sent
    from cmdai_cli.receiver import Received

DEBUGGER = "Segment's Source Debugger (Connections > Sources > your source > Debugger)"
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


FORWARD_WIDTH = 20  # "retrying (no answer)", "failed (not sent)", "200 (11 tries)"


def header_line(*, forward: bool = False) -> str:
    """The table's header; with `forward`, a column for what became of each message's
    forward (`listen --forward-to`)."""
    head = " ".join(f"{name:<{width}}" for name, width in COLUMNS)
    if forward:
        head += " " + f"{'forward':<{FORWARD_WIDTH}}"
    return head + " flags"


def row_line(received: Received, forward: str | None = None) -> str:
    message = received.message
    cells = (
        received.received_at[11:23],
        printable(message.get("type", "?")),
        printable(what(message)),
        printable(who(message)),
    )
    text = " ".join(f"{_cut(c, w):<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True))
    if forward is not None:
        text += " " + f"{_cut(forward, FORWARD_WIDTH):<{FORWARD_WIDTH}}"
    return text + " " + ", ".join(received.flags)


def render_sent(sent: Sent) -> None:
    """The human text for a sent test event (the JSON shape is `sent.as_json()`)."""
    status = sent.status
    answer = {
        "accepted": f"accepted (HTTP {sent.http_status})",
        "refused": f"refused (HTTP {sent.http_status}: {sent.detail})",
        "unreachable": f"unreachable ({sent.detail})",
    }[status]
    if status == "unreachable":
        output.out(f'Not sent: {sent.type} "{sent.event}" could not reach {sent.host}')
    else:
        output.out(f'Sent {sent.type} "{sent.event}" to {sent.host}')
    output.out(f"  messageId  {sent.message_id}")
    output.out(f"  status     {answer}")
    check = sent.key_check
    if check is not None:
        verdict = {
            "verified": f"verified: a source has it ({check.cdn_host})",
            "unknown": "NOT a Segment source's key: Segment accepts events for it and drops "
            f"them ({check.detail})",
            "unverified": f"not verified ({check.detail})",
        }[check.status]
        output.out(f"  write key  {verdict}")
    if sent.local:
        if sent.received is None:
            return
        output.out("")
        output.out("Arrived at the local receiver (as Segment's Source Debugger shows it):")
        output.out(header_line())
        output.out(row_line(sent.received))
        output.out(json.dumps(sent.received.message, indent=2, ensure_ascii=False))
    elif status != "accepted":
        return
    elif check is not None and check.status == "unknown":
        output.out("It will not show in any Source Debugger: give a source's write key.")
    elif _on_this_machine(sent.host):
        output.out(
            f"{sent.host} is on this machine, not Segment: look for it there (for "
            f"`cmdai listen`: `cmdai expect --from {sent.host} --event "
            f'"{sent.event}"`), not in a Source Debugger.'
        )
    else:
        output.out(f"Look for it in {DEBUGGER}; search for the messageId above.")


def _on_this_machine(host: str) -> bool:
    """Whether the event went to a loopback address (a collector such as `cmdai listen`)."""
    return is_loopback(urlsplit(host).hostname or "")
