"""Which events a replay takes: filters, shards, and the messageId each event goes out with.

Pure functions, no I/O. An event without a messageId gets one derived from its content,
so that running the same replay twice gives Segment the same ids to deduplicate on.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from cmdai_cli.errors import UsageError

# Fields a transport adds on each delivery: the same event carries different values in
# different captures, so they are no part of its identity, and replaying them would make
# Segment correct the timestamp by the age of the capture.
TRANSPORT_FIELDS = ("sentAt", "receivedAt", "writeKey")

# A fixed namespace, so a derived id depends on nothing but the event's content.
_ID_NAMESPACE = uuid.UUID("5d1f6a1e-6b0e-4c55-9a2f-3c0a7d6e2b10")


def strip_transport(event: dict[str, Any]) -> dict[str, Any]:
    """The event without the per-delivery fields (in place; returns it)."""
    for name in TRANSPORT_FIELDS:
        event.pop(name, None)
    return event


def derive_message_id(event: Mapping[str, Any]) -> str:
    """A UUID computed from the event's content (keys sorted, transport fields left out).

    Two events with identical content get the same id, and are one event to Segment.
    """
    content = {k: v for k, v in event.items() if k != "messageId" and k not in TRANSPORT_FIELDS}
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return str(uuid.uuid5(_ID_NAMESPACE, canonical.decode("utf-8")))


def ensure_message_id(event: dict[str, Any]) -> str:
    """The event's messageId, set from its content first when it has none."""
    message_id = event.get("messageId")
    if message_id is None or message_id == "":
        message_id = derive_message_id(event)
        event["messageId"] = message_id
    elif type(message_id) is not str:
        message_id = str(message_id)
        event["messageId"] = message_id
    return message_id


# ---------------------------------------------------------------- shards


@dataclass(frozen=True)
class Shard:
    """Share `index` (1-based) of `count`: whole input files, or events, by a hash.

    Several input files are split whole by a hash of their name (so each share reads
    only its own); a single input is split by the hash of each event's messageId.
    """

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, message_id: str) -> bool:
        return shard_of(message_id, self.count) == self.index

    def owns_file(self, name: str) -> bool:
        """Whether the input named `name` (a path as expanded, or a URL) is this share's."""
        return shard_of(name, self.count) == self.index

    def owns_position(self, position: int) -> bool:
        """For records with no messageId (unreadable ones): split by position instead."""
        return position % self.count + 1 == self.index


def shard_of(message_id: str, count: int) -> int:
    """The 1-based share a messageId belongs to; the same on every machine and run."""
    digest = hashlib.blake2b(message_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """`K/N` with 1 <= K <= N (as Jest and Playwright number shards), or `auto/N`.

    `auto` takes K from `JOB_COMPLETION_INDEX`, which a Kubernetes Indexed Job sets,
    0-based, in each of its pods; so K is that plus one. The Job's `completions` (N) is
    not in the environment, hence still given.
    """
    head, sep, tail = text.partition("/")
    if head == "auto" and sep:
        env = os.environ if environ is None else environ
        raw = env.get("JOB_COMPLETION_INDEX")
        if raw is None or not raw.strip().isdigit():
            raise UsageError(
                f"--shard {text}: JOB_COMPLETION_INDEX is "
                + ("not set" if raw is None else f"{raw!r}, not a number")
                + " (a Kubernetes Indexed Job sets it in each pod); elsewhere give K/N"
            )
        head = str(int(raw) + 1)
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index = count = 0
    if not sep or count < 1 or not 1 <= index <= count:
        if text.startswith("auto/") and count >= 1:
            raise UsageError(
                f"--shard {text}: JOB_COMPLETION_INDEX {index - 1} is not below {count} "
                "(the Job's completions must equal N)"
            )
        raise UsageError(
            f"--shard {text!r} is not K/N with 1 <= K <= N (for example 1/4), nor auto/N "
            "(K from JOB_COMPLETION_INDEX + 1, as a Kubernetes Indexed Job sets it)"
        )
    return Shard(index, count)


# ---------------------------------------------------------------- time


def parse_time(value: str) -> datetime:
    """An ISO-8601 date or date-time; a value with no zone is taken as UTC.

    Raises ValueError when `value` is not one.
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_time_option(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise UsageError(
            f"{name} {value!r} is not an ISO-8601 date or time "
            "(for example 2025-05-01 or 2025-05-01T12:00:00Z)"
        ) from None


# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """--type, --event, --since (inclusive) and --until (exclusive) on `timestamp`."""

    types: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def build(
        cls,
        types: Iterable[str] = (),
        events: Iterable[str] = (),
        since: str | None = None,
        until: str | None = None,
    ) -> Filters:
        start = parse_time_option("--since", since)
        end = parse_time_option("--until", until)
        if start is not None and end is not None and start >= end:
            raise UsageError(f"--since {since} is not before --until {until}")
        # `--type identify,track` is `--type identify --type track`; event names may
        # hold commas, so they are taken whole.
        parts = (part.strip() for value in types for part in value.split(","))
        kinds = frozenset(part for part in parts if part)
        return cls(kinds, frozenset(events), start, end)

    @property
    def active(self) -> bool:
        return bool(self.types or self.events or self.since or self.until)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": sorted(self.types),
            "event": sorted(self.events),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.types and event.get("type") not in self.types:
            return False
        if self.events and event.get("event") not in self.events:
            return False
        if self.since is None and self.until is None:
            return True
        stamp = event.get("timestamp")
        if type(stamp) is not str:
            return False
        try:
            when = parse_time(stamp)
        except ValueError:
            return False
        if self.since is not None and when < self.since:
            return False
        return not (self.until is not None and when >= self.until)
