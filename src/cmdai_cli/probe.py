"""The probe event: build it, send it (to Segment or to an in-process receiver), judge it.

Used by `send-test`, `connect --send-test` and `doctor --send-test`, so that all three
send the same event and read Segment's answer the same way. The hints for Segment's
error answers are written here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmdai_cli.errors import CmdaiError

if TYPE_CHECKING:
    from cmdai_cli.receiver import Received

DEBUGGER = "Segment's Source Debugger (Connections > Sources > your source > Debugger)"
SEGMENT_HOST_HINT = (
    "the host should be Segment's Tracking API: https://api.segment.io (us) or "
    "https://events.eu1.segmentapis.com (eu); set --host or $CMDAI_SEGMENT_HOST"
)
NETWORK_HINT = "check the host and the network (proxy, firewall)"
# What to do about each refusal of Segment's Tracking API. Its HTTP API docs: 400 for a
# body over the size limits or not JSON, 429 when rate limited; the write key is the
# request's only credential, so 401/403 point at it (or at a workspace of the other region).
SEGMENT_HINTS = {
    400: "Segment refused the request body",
    401: "check the write key (`cmdai connect`)",
    403: "check the write key and the region (`--region eu` for EU workspaces)",
    404: SEGMENT_HOST_HINT,
    429: "rate limited: wait and try again",
}


SERVER_FAILED_HINT = "Segment's side failed; try again later"


def segment_hint(status: int | None) -> str | None:
    """What to do about Segment's answer `status`, when there is something to say."""
    return SEGMENT_HINTS.get(status or 0)


def not_taken(host: str, status: int | None, detail: str, what: str = "") -> tuple[str, str]:
    """(what was seen, hint) for an answer that is not a success; `what` names the request.

    A 5xx is a failure on Segment's side, not a refusal (the same rule as the exit codes).
    """
    about = f" {what}" if what else ""
    if status is not None and status >= 500:
        return f"{host} failed{about}: HTTP {status}: {detail}", SERVER_FAILED_HINT
    return (
        f"{host} refused{about}: HTTP {status}: {detail}",
        segment_hint(status) or SEGMENT_HOST_HINT,
    )


def parse_properties(pairs: list[str] | None) -> dict[str, Any]:
    """`K=V` pairs; V is read as JSON when it parses (3, true, {...}), else as text."""
    from cmdai_cli.values import parse_property

    return dict(parse_property(pair) for pair in pairs or [])


def build(
    event: str | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    properties: dict[str, Any] | None = None,
    *,
    custom: bool = False,
) -> tuple[dict[str, Any], str]:
    """The message to send and the event name to report for it.

    No `event`: the catalogue's test event, marked as a test. An `event` that is not in
    Command AI's catalogue is refused, with the nearest names, unless `custom`: a typo
    sent to a production source cannot be taken back.
    """
    from cmdai_cli import catalogue
    from cmdai_cli.errors import UsageError

    properties = properties or {}
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
    if not custom and catalogue.lookup(event) is None:
        raise UsageError(
            f"--event {event!r} is not in Command AI's catalogue{_did_you_mean(event)}",
            hint="give --custom to send it as a custom track event",
        )
    spec = catalogue.spec_for(event)
    message = catalogue.build_message(
        spec, user_id=user_id, anonymous_id=anonymous_id, properties=properties
    )
    return message, spec.name


def _did_you_mean(event: str) -> str:
    import difflib

    from cmdai_cli.event_names import ALL

    # Both an event's name and its properties.type lead to its name.
    names = {key.lower(): name for name, kind in ALL for key in (name, kind)}
    close = difflib.get_close_matches(event.lower(), list(names), n=6, cutoff=0.6)
    shown = list(dict.fromkeys(names[key] for key in close))[:3]
    if not shown:
        return ""
    return "; did you mean " + " or ".join(repr(name) for name in shown) + "?"


@dataclass
class Sent:
    """What became of the test event: `summary` is the JSON shape `send-test` prints."""

    summary: dict[str, Any]
    received: Received | None = None

    @property
    def status(self) -> str:
        return str(self.summary["status"])


def send_to(
    message: dict[str, Any], event: str, *, write_key: str, host: str, timeout: float
) -> Sent:
    """Send `message` to Segment's Tracking API at `host`."""
    from cmdai_cli.segment.sender import send

    outcome = send([message], write_key=write_key, host=host, timeout=timeout)[0]
    return _sent(message, event, outcome, host, local=False)


def send_local(message: dict[str, Any], event: str, *, timeout: float) -> Sent:
    """Send `message` to a receiver started in-process on a free loopback port."""
    from cmdai_cli.receiver.local import local_round_trip

    result = local_round_trip(message, timeout=timeout)
    sent = _sent(message, event, result.outcome, result.url, local=True)
    sent.received = result.received
    if result.received is not None:
        sent.summary["received"] = result.received.as_dict()
    return sent


def send_with_profile(
    message: dict[str, Any],
    event: str,
    *,
    profile_name: str | None,
    host: str | None,
    timeout: float,
    check_key: bool = True,
    cdn: str | None = None,
) -> Sent:
    """Send `message` to the Segment source of a profile (`host` overrides its host).

    With `check_key`, the key is then looked up on Segment's CDN (`keyCheck` in the
    summary): Segment's "accepted" says nothing about the key, the CDN does.
    """
    from cmdai_cli import profile
    from cmdai_cli.segment.sender import host_for

    if cdn is not None:
        from cmdai_cli.values import check_url

        cdn = check_url(cdn, what="--cdn-host")
    resolved = profile.resolve(profile_name, {"segment_host": host, "cdn_host": cdn})
    write_key = resolved.require(
        "write_key", hint="run `cmdai connect`, or try `cmdai send-test --local`"
    )
    target = host_for(resolved.get("region"), resolved.get("segment_host"))
    sent = send_to(message, event, write_key=write_key, host=target, timeout=timeout)
    if check_key:
        from cmdai_cli.segment.cdn import check_write_key

        check = check_write_key(write_key, str(resolved.get("cdn_host")), timeout)
        sent.summary["keyCheck"] = check.as_dict()
    return sent


def _sent(message: dict[str, Any], event: str, outcome: Any, host: str, *, local: bool) -> Sent:
    from cmdai_cli.errors import DataError

    if outcome.status == "invalid":
        raise DataError(f"the event was not sent: {outcome.detail}")
    summary = {
        "messageId": outcome.message_id,
        "event": event,
        "type": message.get("type"),
        "host": host,
        "status": outcome.status,
        "httpStatus": outcome.http_status,
        "detail": outcome.detail,
        "local": local,
    }
    return Sent(summary)


def failure(summary: dict[str, Any]) -> CmdaiError | None:
    """The error for a result that is not a success, or None.

    One rule for every command: Segment answered and refused (a 4xx) -> exit 5; it could
    not be reached, timed out, or failed with a 5xx -> exit 6.
    """
    from cmdai_cli.errors import PartialFailure, RemoteRefused, RemoteUnreachable

    status = summary["status"]
    code = summary["httpStatus"]
    host = summary["host"]
    if status == "refused" and code is not None and code >= 500:
        return RemoteUnreachable(
            f"Segment failed to take the event at {host}: HTTP {code}: {summary['detail']}",
            hint=SERVER_FAILED_HINT,
        )
    if status == "refused":
        return RemoteRefused(
            f"Segment refused the event at {host}: HTTP {code}: {summary['detail']}",
            status=code,
            hint=segment_hint(code),
        )
    if status == "unreachable":
        return RemoteUnreachable(f"{host} did not answer: {summary['detail']}")
    if summary["local"] and "received" not in summary:
        return PartialFailure("the local receiver accepted the event but it did not arrive")
    return None


def verdict(sent: Sent) -> tuple[bool, str, str | None]:
    """(passed, what was seen, hint) for a health check that sent the test event."""
    summary = sent.summary
    host, code = summary["host"], summary["httpStatus"]
    if sent.status == "accepted":
        return (
            True,
            f"{host} accepted test event {summary['event']!r} "
            f"(HTTP {code}, messageId {summary['messageId']}); "
            "look for it in Segment's Source Debugger",
            None,
        )
    if sent.status == "refused":
        detail, hint = not_taken(host, code, summary["detail"], "the test event")
        return False, detail, hint
    return (False, f"{host}: the test event was not sent: {summary['detail']}", NETWORK_HINT)
