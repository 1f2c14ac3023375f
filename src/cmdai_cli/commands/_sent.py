"""How `send-test` and `connect --send-test` show what became of the test event."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cmdai_cli import output

if TYPE_CHECKING:
    from cmdai_cli.probe import Sent


def render(sent: Sent) -> None:
    """The human text for a sent test event (the JSON shape is `sent.summary`)."""
    from cmdai_cli.probe import DEBUGGER

    summary = sent.summary
    status = summary["status"]
    answer = {
        "accepted": f"accepted (HTTP {summary['httpStatus']})",
        "refused": f"refused (HTTP {summary['httpStatus']}: {summary['detail']})",
        "unreachable": f"unreachable ({summary['detail']})",
    }[status]
    output.out(f'Sent {summary["type"]} "{summary["event"]}" to {summary["host"]}')
    output.out(f"  messageId  {summary['messageId']}")
    output.out(f"  status     {answer}")
    check = summary.get("keyCheck")
    if check is not None:
        verdict = {
            "verified": f"verified: a source has it ({check['cdn_host']})",
            "unknown": "NOT a Segment source's key: Segment accepts events for it and drops "
            f"them ({check.get('detail', '')})",
            "unverified": f"not verified ({check.get('detail', '')})",
        }[check["status"]]
        output.out(f"  write key  {verdict}")
    if summary["local"]:
        from cmdai_cli.commands._received import header_line, row_line

        if sent.received is None:
            return
        output.out("")
        output.out("Arrived at the local receiver (as Segment's Source Debugger shows it):")
        output.out(header_line())
        output.out(row_line(sent.received))
        output.out(json.dumps(sent.received.message, indent=2, ensure_ascii=False))
    elif status == "accepted" and (check is None or check["status"] != "unknown"):
        output.out(f"Look for it in {DEBUGGER}; search for the messageId above.")
    elif status == "accepted":
        output.out("It will not show in any Source Debugger: give a source's write key.")
