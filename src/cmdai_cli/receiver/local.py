"""`send-test --local`: one message through the real Segment client to a receiver of its own."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmdai_cli.receiver.options import ListenOptions
from cmdai_cli.receiver.service import Receiver
from cmdai_cli.receiver.store import Received

if TYPE_CHECKING:
    from cmdai_cli.segment.sender import Outcome


@dataclass(frozen=True)
class LocalResult:
    """A message sent through the real client to an in-process receiver, and what arrived."""

    url: str
    outcome: Outcome
    received: Received | None


def local_round_trip(message: Mapping[str, Any], *, timeout: float = 10.0) -> LocalResult:
    """Start a receiver on a free loopback port, send `message` to it, wait for it."""
    # Imported here: the sender reads the profile module, which loads pydantic.
    from cmdai_cli.segment.sender import Sender

    key = "local-" + secrets.token_hex(12)
    with Receiver(ListenOptions(write_key=key, keep=100)) as receiver:
        with Sender(key, receiver.url, timeout=timeout) as sender:
            outcome = sender.send_one(message)
        arrived = None
        if outcome.ok and outcome.message_id:
            found = receiver.wait_for(message_id=outcome.message_id, timeout=timeout)
            arrived = found[0] if found else None
        return LocalResult(receiver.url, outcome, arrived)
