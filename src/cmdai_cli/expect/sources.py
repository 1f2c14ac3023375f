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
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import httpx
import orjson

from cmdai_cli import http_policy, settings_file
from cmdai_cli.errors import DataError, RemoteRefused, UsageError
from cmdai_cli.http_errors import error_for_exception, error_for_response
from cmdai_cli.js_json import loads
from cmdai_cli.printable import printable
from cmdai_cli.receiver.store import DUPLICATE, Query
from cmdai_cli.segment.messages import flags_for
from cmdai_cli.values import refuse_credentials

# listen keeps 100,000 messages by default; their capture is far below this.
CAPTURE_LIMIT = 512 * settings_file.MiB
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

    def catalogue(self) -> tuple[int, list[tuple[Item, list[str]]]] | None:
        """The source's own catalogue check (messages checked, those broken), if it has one."""

    def close(self) -> None: ...


def open_source(text: str, *, timeout: float) -> Source:
    """A collector for an http(s) URL, else a capture file."""
    refuse_credentials(text, what="--from")
    if text.startswith(("http://", "https://")):
        return Collector(text, timeout=timeout)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        raise UsageError(
            f"--from {printable(text)}: {scheme.group(1)}:// is neither a collector's URL "
            "(http:// or https://, where `cmdai listen` answers) nor a capture file"
        )
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
                # As JSON.parse reads it: listen writes a lone surrogate as its escape.
                return loads(response.content)
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

    def refresh(self) -> None:
        pass

    def messages(self, query: Query) -> list[Item]:
        path = "/cmdai/messages"
        found = self._get(path, _query_params(query))
        if not isinstance(found, list):
            raise self._unlike(path, "not a list of messages")
        items = []
        for entry in found:
            if not isinstance(entry, dict) or not isinstance(entry.get("message"), dict):
                raise self._unlike(path, "an entry without a message object")
            items.append(
                Item(entry["message"], flag_texts(entry.get("flags")), str(entry.get("receivedAt")))
            )
        return items

    def counts(self) -> Counts:
        path = "/cmdai/summary"
        summary = self._get(path)
        if not isinstance(summary, dict):
            raise self._unlike(path, "not a JSON object")
        received: Any = summary.get("received")
        kept: Any = summary.get("kept", received)
        flagged: Any = summary.get("flagged")
        dropped: Any = summary.get("droppedByKeep", 0)
        by_flag: Any = summary.get("byFlag")
        by_event: Any = summary.get("byEvent")
        keep: Any = summary.get("keep")
        whole = all(type(n) is int for n in (received, kept, flagged, dropped))
        tables = all(
            isinstance(table, dict) and all(type(n) is int for n in table.values())
            for table in (by_flag, by_event)
        )
        if not (whole and tables and (keep is None or type(keep) is int)):
            raise self._unlike(path, "counts that are not whole numbers")
        return Counts(received, flagged, by_flag, by_event, kept=kept, dropped=dropped, keep=keep)

    def _unlike(self, path: str, what: str) -> RemoteRefused:
        return RemoteRefused(
            f"{SERVICE} at {self.where}{path} answered {what}",
            hint="is it `cmdai listen` (with the inspection API) that answers there?",
        )

    def catalogue(self) -> tuple[int, list[tuple[Item, list[str]]]] | None:
        """The collector's own check of its messages against the catalogue: how many
        were checked, and those that break it; None from a collector without it."""
        try:
            found = self._get("/cmdai/catalogue")
        except RemoteRefused as exc:
            if exc.status == 404:
                return None
            raise
        path = "/cmdai/catalogue"
        entries = found.get("broken") if isinstance(found, dict) else None
        checked = found.get("checked") if isinstance(found, dict) else None
        if type(checked) is not int or not isinstance(entries, list):
            raise self._unlike(path, "no count of checked messages and list of broken ones")
        broken = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("message"), dict):
                raise self._unlike(path, "an entry without a message object")
            problems = entry.get("problems")
            if not isinstance(problems, list):
                raise self._unlike(path, "an entry without a list of problems")
            item = Item(
                entry["message"], flag_texts(entry.get("flags")), str(entry.get("receivedAt"))
            )
            broken.append((item, [str(problem) for problem in problems]))
        return checked, broken

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
            data = settings_file.read(
                self.path,
                what="capture file",
                limit=CAPTURE_LIMIT,
                fail=lambda reason: DataError(reason, source=self.where),
            )
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

    def catalogue(self) -> None:
        return None

    def close(self) -> None:
        pass


def flag_texts(value: Any) -> tuple[str, ...]:
    """Flags as text, whatever a capture line or a server gave (a list of strings, else
    each shown as its JSON)."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(item if isinstance(item, str) else orjson.dumps(item).decode() for item in items)


def read_capture(data: bytes, where: str) -> Iterable[Item]:
    """The messages of a capture, with flags (a repeated messageId's too)."""
    seen: set[str] = set()
    lines = data.split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = loads(line)  # as JSON.parse reads it, lone surrogates and all
        except orjson.JSONDecodeError:
            if number == len(lines):
                # The last line of a file still being written: read on the next look.
                return
            raise DataError("not a JSON line", source=where, line=number) from None
        if not isinstance(record, dict):
            raise DataError("not a JSON object", source=where, line=number)
        wrapped = record.get("message")
        if isinstance(wrapped, dict) and "flags" in record:
            # A line of `listen --json`: flags as the receiver gave them.
            yield Item(wrapped, flag_texts(record["flags"]), str(record.get("receivedAt", "")))
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
