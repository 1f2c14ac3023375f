"""`cmdai send-test`: send one event to the Segment source and say what Segment answered."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, complete_events

if TYPE_CHECKING:
    from cmdai_cli.receiver import Received

DEBUGGER = "Segment's Source Debugger (Connections > Sources > your source > Debugger)"


def register(app: typer.Typer) -> None:
    command(app, "send-test")(send_test)


def parse_properties(pairs: list[str] | None) -> dict[str, Any]:
    """`K=V` pairs; V is read as JSON when it parses (3, true, {...}), else as text."""
    from cmdai_cli.errors import UsageError

    properties: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--property {pair!r} is not KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        properties[key.strip()] = value
    return properties


def build(
    event: str | None,
    user_id: str | None,
    anonymous_id: str | None,
    properties: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """The message to send and the event name to report for it."""
    from cmdai_cli import catalogue
    from cmdai_cli.errors import UsageError

    if user_id is not None and anonymous_id is not None:
        raise UsageError("give --user-id or --anonymous-id, not both")
    for flag, value in (("--user-id", user_id), ("--anonymous-id", anonymous_id)):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} is empty")
    if event is None:
        message = catalogue.test_message(
            user_id=user_id, anonymous_id=anonymous_id, properties=properties
        )
        return message, catalogue.TEST_EVENT
    if not event.strip():
        raise UsageError("--event is empty")
    spec = catalogue.spec_for(event)
    message = catalogue.build_message(
        spec, user_id=user_id, anonymous_id=anonymous_id, properties=properties
    )
    return message, spec.name


def perform(
    message: dict[str, Any],
    event: str,
    *,
    local: bool,
    host: str | None,
    timeout: float,
) -> tuple[dict[str, Any], Received | None]:
    """Send `message` (to Segment, or to an in-process receiver) and describe the result."""
    from cmdai_cli.errors import DataError, UsageError

    received = None
    if local:
        from cmdai_cli.receiver.local import local_round_trip

        if host is not None:
            raise UsageError("--local and --host cannot be used together")
        result = local_round_trip(message, timeout=timeout)
        outcome, target, received = result.outcome, result.url, result.received
    else:
        from cmdai_cli import profile
        from cmdai_cli.segment.sender import host_for, send

        resolved = profile.resolve(STATE.profile, {"segment_host": host})
        write_key = resolved.require(
            "write_key", hint="run `cmdai connect`, or try `cmdai send-test --local`"
        )
        target = host_for(resolved.get("region"), resolved.get("segment_host"))
        outcome = send([message], write_key=write_key, host=target, timeout=timeout)[0]
    if outcome.status == "invalid":
        raise DataError(f"the event was not sent: {outcome.detail}")
    summary = {
        "messageId": outcome.message_id,
        "event": event,
        "type": message.get("type"),
        "host": target,
        "status": outcome.status,
        "httpStatus": outcome.http_status,
        "detail": outcome.detail,
        "local": local,
    }
    if received is not None:
        summary["received"] = received.as_dict()
    return summary, received


def render(summary: dict[str, Any], received: Received | None) -> None:
    if STATE.json:
        output.emit_json(summary)
        return
    status = summary["status"]
    answer = {
        "accepted": f"accepted (HTTP {summary['httpStatus']})",
        "refused": f"refused (HTTP {summary['httpStatus']}: {summary['detail']})",
        "unreachable": f"unreachable ({summary['detail']})",
    }[status]
    output.out(f'Sent {summary["type"]} "{summary["event"]}" to {summary["host"]}')
    output.out(f"  messageId  {summary['messageId']}")
    output.out(f"  status     {answer}")
    if summary["local"]:
        from cmdai_cli.commands._received import header_line, row_line

        if received is None:
            return
        output.out("")
        output.out("Arrived at the local receiver (as Segment's Source Debugger shows it):")
        output.out(header_line())
        output.out(row_line(received))
        output.out(json.dumps(received.message, indent=2, ensure_ascii=False))
    elif status == "accepted":
        output.out(f"Look for it in {DEBUGGER}; search for the messageId above.")


def raise_for(summary: dict[str, Any]) -> None:
    """The exit for a result that is not 'accepted': refused 5, unreachable 6."""
    from cmdai_cli.errors import PartialFailure, RemoteRefused, RemoteUnreachable

    status = summary["status"]
    if status == "refused":
        code = summary["httpStatus"]
        hint = {
            401: "check the write key (`cmdai connect`)",
            403: "check the write key and the region (`--region eu` for EU workspaces)",
            429: "rate limited: wait and try again",
        }.get(code)
        raise RemoteRefused(
            f"Segment refused the event at {summary['host']}: HTTP {code}: {summary['detail']}",
            status=code,
            hint=hint,
        )
    if status == "unreachable":
        raise RemoteUnreachable(f"{summary['host']} did not answer: {summary['detail']}")
    if summary["local"] and "received" not in summary:
        raise PartialFailure("the local receiver accepted the event but it did not arrive")


def send_test(
    event: Annotated[
        str | None,
        typer.Option(
            "--event",
            help="A Command AI event name or type (opened, 'Nudge Shown', ...) to send with "
            "realistic properties. Default: a test event marked as a test.",
            show_default=False,
            autocompletion=complete_events,
        ),
    ] = None,
    user_id: Annotated[
        str | None, typer.Option("--user-id", help="userId to send.", show_default=False)
    ] = None,
    anonymous_id: Annotated[
        str | None,
        typer.Option(
            "--anonymous-id",
            help="anonymousId to send (default: a generated one).",
            show_default=False,
        ),
    ] = None,
    property_: Annotated[
        list[str] | None,
        typer.Option(
            "--property",
            help="Extra property K=V (repeatable); V is read as JSON when it parses.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Tracking API base URL, overriding the profile's host."),
    ] = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Send to a receiver started in-process on a free loopback port: "
            "no profile, no network.",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Give up after this many seconds.", min=0.5, max=300),
    ] = 15.0,
) -> None:
    """Send a test event to the Segment source and report whether Segment accepted it.

    Exit 0 only when Segment answered 2xx; 5 when it refused; 6 when unreachable.
    """
    message, name = build(event, user_id, anonymous_id, parse_properties(property_))
    summary, received = perform(message, name, local=local, host=host, timeout=timeout)
    render(summary, received)
    raise_for(summary)
