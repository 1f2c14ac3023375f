"""Where `cmdai expect` reads what was received: a running `listen`, or its capture file.

A running collector is asked through its inspection API, filtered on its side (type,
event, user), so that checking against 100,000 kept messages moves only the few that
could match. A capture file (`listen --out`, or the lines of `listen --json`) is read
whole on each poll, since a live one keeps growing; messages from `--out` carry no
flags, so Segment's rules are applied again (`flags_for`, and a repeated messageId).
Flags that need the request (a wrong write key, a size in the grey zone) cannot be
worked out from the message: only the running collector and its `listen --json` lines
have them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson

from cmdai_cli.errors import DataError, RemoteRefused
from cmdai_cli.receiver.kept import DUPLICATE, Query
from cmdai_cli.segment.messages import flags_for
from cmdai_cli.values import refuse_credentials

if TYPE_CHECKING:
    import httpx

SERVICE = "the collector"


class NoCapture(DataError):
    """The capture file is not there (yet: `--within` waits for it, as for a collector)."""


class Item(NamedTuple):
    """One received message with its flags and `receivedAt`."""

    message: dict[str, Any]
    flags: tuple[str, ...]
    received_at: str

    # What a `Query` filters on.
    @property
    def type(self) -> Any:
        return self.message.get("type")

    @property
    def event(self) -> Any:
        return self.message.get("event")

    @property
    def user_id(self) -> Any:
        return self.message.get("userId")

    @property
    def anonymous_id(self) -> Any:
        return self.message.get("anonymousId")


@dataclass
class Counts:
    """How many messages there are, how many flagged, and by flag and event name.

    `kept` is how many can be looked at: a collector's `--keep` drops the oldest
    beyond it (`dropped`), and then no count of messages is complete.
    """

    received: int = 0
    flagged: int = 0
    by_flag: dict[str, int] = field(default_factory=dict)
    by_event: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    dropped: int = 0
    keep: int | None = None


class Source(Protocol):
    where: str

    def refresh(self) -> None:
        """Start a new look: what arrived since the last one counts from now on."""

    def messages(self, query: Query) -> list[Item]: ...

    def counts(self) -> Counts: ...

    def close(self) -> None: ...


def open_source(text: str, *, timeout: float) -> Source:
    """A collector for an http(s) URL, else a capture file."""
    refuse_credentials(text, what="--from")
    if text.startswith(("http://", "https://")):
        return Collector(text, timeout=timeout)
    return CaptureFile(Path(text))


def _query_params(query: Query) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for name, values in (
        ("type", query.types),
        ("event", query.events),
        ("userId", query.user_ids),
        ("anonymousId", query.anonymous_ids),
    ):
        params.extend((name, value) for value in values)
    if query.flagged is not None:
        params.append(("flagged", "true" if query.flagged else "false"))
    if query.since is not None:
        params.append(("since", query.since))
    if query.limit is not None:
        params.append(("limit", str(query.limit)))
    return params


class Collector:
    """A running `cmdai listen`, through its inspection API."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.where = url.rstrip("/")
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def _get(self, path: str, params: list[tuple[str, str]] | tuple[()] = ()) -> Any:
        import httpx

        from cmdai_cli import http_policy
        from cmdai_cli.http_errors import error_for_exception, error_for_response

        if self._client is None:
            self._client = http_policy.client(timeout=self.timeout)
        hints = {404: "is it `cmdai listen` (with the inspection API) that answers there?"}
        try:
            response = http_policy.send(
                self._client,
                "GET",
                self.where + path,
                service=SERVICE,
                limit=http_policy.COLLECTOR_LIMIT,
                seconds=self.timeout,
                params=list(params),
            )
        except httpx.HTTPError as exc:
            context = "is `cmdai listen` running?"
            raise error_for_exception(exc, service=SERVICE, context=context) from None
        if response.status_code == 200:
            with contextlib.suppress(orjson.JSONDecodeError):
                return orjson.loads(response.content)
            raise self._unlike(path, "a body that is not JSON")
        raise error_for_response(
            response.status_code,
            response.headers,
            response.content,
            service=SERVICE,
            method="GET",
            url=str(response.request.url),
            hints=hints,
        )

    def _unlike(self, path: str, what: str) -> RemoteRefused:
        return RemoteRefused(
            f"{SERVICE} answered GET {path} with {what}, not what `cmdai listen` answers",
            hint="is it `cmdai listen` (with the inspection API) that answers there?",
        )

    def refresh(self) -> None:
        pass

    def messages(self, query: Query) -> list[Item]:
        found = self._get("/cmdai/messages", _query_params(query))
        items = []
        for entry in found if isinstance(found, list) else [None]:
            if not isinstance(entry, dict):
                raise self._unlike("/cmdai/messages", "something other than a list of messages")
            message, flags = entry.get("message"), entry.get("flags")
            received_at = entry.get("receivedAt")
            if (
                not isinstance(message, dict)
                or not isinstance(flags, list)
                or not all(isinstance(flag, str) for flag in flags)
                or not isinstance(received_at, str)
            ):
                raise self._unlike("/cmdai/messages", "a message of the wrong shape")
            items.append(Item(message, tuple(flags), received_at))
        return items

    def counts(self) -> Counts:
        summary = self._get("/cmdai/summary")
        if not isinstance(summary, dict):
            raise self._unlike("/cmdai/summary", "something other than a summary object")

        def number(key: str, default: int | None = None) -> int:
            value = summary.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise self._unlike("/cmdai/summary", f"a {key!r} that is not a count")
            return value

        def tally(key: str) -> dict[str, int]:
            value = summary.get(key)
            if not isinstance(value, dict) or not all(
                isinstance(n, int) and not isinstance(n, bool) for n in value.values()
            ):
                raise self._unlike("/cmdai/summary", f"a {key!r} that is not counts by name")
            return {str(k): n for k, n in value.items()}

        received = number("received")
        keep = summary.get("keep")
        return Counts(
            received,
            number("flagged"),
            tally("byFlag"),
            tally("byEvent"),
            kept=number("kept", received),
            dropped=number("droppedByKeep", 0),
            keep=keep if isinstance(keep, int) and not isinstance(keep, bool) else None,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class CaptureFile:
    """The NDJSON `listen --out` writes (or what `listen --json` printed), read on each look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._items: list[Item] = []

    def refresh(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise NoCapture("no such capture file", source=self.where) from None
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror}", source=self.where) from None
        self._items = list(read_capture(data, self.where))

    def messages(self, query: Query) -> list[Item]:
        return query.select(self._items)

    def counts(self) -> Counts:
        counts = Counts(received=len(self._items), kept=len(self._items))
        for item in self._items:
            if item.flags:
                counts.flagged += 1
                for flag in item.flags:
                    counts.by_flag[flag] = counts.by_flag.get(flag, 0) + 1
            if item.type == "track" and isinstance(item.event, str):
                counts.by_event[item.event] = counts.by_event.get(item.event, 0) + 1
        return counts

    def close(self) -> None:
        pass


def read_capture(data: bytes, where: str) -> Iterable[Item]:
    """The messages of a capture, with flags (a repeated messageId's too)."""
    seen: set[str] = set()
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            if number == len(lines):
                # The last line of a file still being written: read on the next look.
                return
            raise DataError("not a JSON line", source=where, line=number) from None
        if not isinstance(record, dict):
            raise DataError("not a JSON object", source=where, line=number)
        wrapped = record.get("message")
        if isinstance(wrapped, dict) and isinstance(record.get("flags"), list):
            # A line of `listen --json`: flags as the receiver gave them.
            yield Item(wrapped, tuple(record["flags"]), str(record.get("receivedAt", "")))
            continue
        if "type" not in record and {"listening", "summary"} & record.keys():
            continue
        flags = flags_for(record)
        message_id = record.get("messageId")
        if isinstance(message_id, str):
            if message_id in seen:
                flags += (DUPLICATE,)
            seen.add(message_id)
        yield Item(record, flags, str(record.get("receivedAt", "")))
