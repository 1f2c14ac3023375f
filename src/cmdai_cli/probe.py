"""The probe event: build it, send it (to Segment or to an in-process receiver), judge it.

Used by `send-test`, `connect --send-test` and `doctor --send-test`, so that all three
send the same event and read Segment's answer the same way (its hints are the Segment
layer's, `cmdai_cli.segment.sender`).
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmdai_cli import catalogue
from cmdai_cli.errors import (
    CmdaiError,
    DataError,
    ExitCode,
    PartialFailure,
    RemoteRefused,
    RemoteUnreachable,
    UsageError,
)
from cmdai_cli.event_names import ALL
from cmdai_cli.segment.cdn import KeyCheck, check_write_key
from cmdai_cli.segment.sender import (
    NETWORK_HINT,
    SERVER_FAILED_HINT,
    Sender,
    host_for,
    not_taken,
    segment_hint,
    send,
)
from cmdai_cli.values import parse_property

if TYPE_CHECKING:
    from cmdai_cli.profile import Resolved
    from cmdai_cli.receiver import Received


def parse_properties(pairs: list[str] | None) -> dict[str, Any]:
    """`K=V` pairs; V is read as JSON when it parses (3, true, {...}), else as text."""
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
    # Both an event's name and its properties.type lead to its name.
    names = {key.lower(): name for name, kind in ALL for key in (name, kind)}
    close = difflib.get_close_matches(event.lower(), list(names), n=6, cutoff=0.6)
    shown = list(dict.fromkeys(names[key] for key in close))[:3]
    if not shown:
        return ""
    return "; did you mean " + " or ".join(repr(name) for name in shown) + "?"


@dataclass(frozen=True)
class ProbeRequest:
    """The test event to send (see `build`) and where: `settings` are the run's resolved
    settings (its write key, region, hosts); None sends to an in-process receiver."""

    event: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    custom: bool = False
    settings: Resolved | None = None
    check_key: bool = True
    timeout: float = 15.0


@dataclass
class Sent:
    """What became of the test event; `as_json()` is the document `send-test` prints."""

    message_id: str | None
    event: str
    type: str | None
    host: str
    status: str
    http_status: int | None
    detail: str
    local: bool
    # What arrived at the local receiver (`local` only; None: nothing arrived).
    received: Received | None = None
    # What Segment's CDN said of the write key (None: not asked).
    key_check: KeyCheck | None = None

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "messageId": self.message_id,
            "event": self.event,
            "type": self.type,
            "host": self.host,
            "status": self.status,
            "httpStatus": self.http_status,
            "detail": self.detail,
            "local": self.local,
        }
        if self.key_check is not None:
            document["keyCheck"] = self.key_check.as_dict()
        if self.received is not None:
            document["received"] = self.received.as_dict()
        return document

    @property
    def exit_code(self) -> ExitCode:
        error = failure(self)
        return ExitCode.OK if error is None else error.exit_code

    @property
    def problem(self) -> str | None:
        error = failure(self)
        if error is None:
            return None
        return error.message + (f" (hint: {error.hint})" if error.hint else "")


def run(request: ProbeRequest) -> Sent:
    """Build the test event and send it: to the Segment source of `request.settings`, or,
    without settings, to a receiver started in-process on a free loopback port.

    With `check_key`, the key is then looked up on Segment's CDN (`keyCheck` in the
    document): Segment's "accepted" says nothing about the key, the CDN does.
    """
    message, event = build(
        request.event,
        request.user_id,
        request.anonymous_id,
        dict(request.properties),
        custom=request.custom,
    )
    settings = request.settings
    if settings is None:
        return send_local(message, event, timeout=request.timeout)
    write_key = settings.require(
        "write_key", hint="run `cmdai connect`, or try `cmdai send-test --local`"
    )
    target = host_for(settings.get("region"), settings.get("segment_host"))
    sent = send_to(message, event, write_key=write_key, host=target, timeout=request.timeout)
    if request.check_key:
        sent.key_check = check_write_key(write_key, str(settings.get("cdn_host")), request.timeout)
    return sent


def send_to(
    message: dict[str, Any], event: str, *, write_key: str, host: str, timeout: float
) -> Sent:
    """Send `message` to Segment's Tracking API at `host`."""
    outcome = send([message], write_key=write_key, host=host, timeout=timeout)[0]
    return _sent(message, event, outcome, host, local=False)


def send_local(message: dict[str, Any], event: str, *, timeout: float) -> Sent:
    """Send `message` through the real Segment client to a receiver started in-process on
    a free loopback port, and wait for it to arrive there."""
    # Imported here: the receiver (asyncio, h11, its routes) adds about 60 ms
    # (python -X importtime) that only --local needs.
    from cmdai_cli.receiver import ListenOptions, Receiver

    key = "local-" + secrets.token_hex(12)
    with Receiver(ListenOptions(write_key=key, keep=100)) as receiver:
        with Sender(key, receiver.url, timeout=timeout) as sender:
            outcome = sender.send_one(message)
        arrived = None
        if outcome.ok and outcome.message_id:
            found = receiver.wait_for(message_id=outcome.message_id, timeout=timeout)
            arrived = found[0] if found else None
    sent = _sent(message, event, outcome, receiver.url, local=True)
    sent.received = arrived
    return sent


def _sent(message: dict[str, Any], event: str, outcome: Any, host: str, *, local: bool) -> Sent:
    if outcome.status == "invalid":
        raise DataError(f"the event was not sent: {outcome.detail}")
    return Sent(
        message_id=outcome.message_id,
        event=event,
        type=message.get("type"),
        host=host,
        status=outcome.status,
        http_status=outcome.http_status,
        detail=outcome.detail,
        local=local,
    )


def failure(sent: Sent) -> CmdaiError | None:
    """The error for a result that is not a success, or None.

    One rule for every command: Segment answered and refused (a 4xx) -> exit 5; it could
    not be reached, timed out, or failed with a 5xx -> exit 6.
    """
    status, code, host = sent.status, sent.http_status, sent.host
    if status == "refused" and code is not None and code >= 500:
        return RemoteUnreachable(
            f"Segment failed to take the event at {host}: HTTP {code}: {sent.detail}",
            hint=SERVER_FAILED_HINT,
        )
    if status == "refused":
        return RemoteRefused(
            f"Segment refused the event at {host}: HTTP {code}: {sent.detail}",
            status=code,
            hint=segment_hint(code),
        )
    if status == "unreachable":
        return RemoteUnreachable(f"{host} did not answer: {sent.detail}")
    if sent.local and sent.received is None:
        return PartialFailure("the local receiver accepted the event but it did not arrive")
    return None


def verdict(sent: Sent) -> tuple[bool, str, str | None]:
    """(passed, what was seen, hint) for a health check that sent the test event."""
    host, code = sent.host, sent.http_status
    if sent.status == "accepted":
        return (
            True,
            f"{host} accepted test event {sent.event!r} "
            f"(HTTP {code}, messageId {sent.message_id}); "
            "look for it in Segment's Source Debugger",
            None,
        )
    if sent.status == "refused":
        detail, hint = not_taken(host, code, sent.detail, "the test event")
        return False, detail, hint
    return (False, f"{host}: the test event was not sent: {sent.detail}", NETWORK_HINT)
