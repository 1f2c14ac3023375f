"""Where a replay sends: Segment, the Command AI webhook, or Command AI's bulk-identify.

Each target turns an event into what it sends (`prepare`), groups those into requests
(`builder`), and sends one request once (`send`, a coroutine run on the delivery loop),
reporting the answer; retrying is the caller's business. Segment goes through
segment-analytics-python's transport, from a forked worker process (or, where that is
not possible, a thread per request); the two Command AI endpoints through
`cmdai_cli.commandai`'s asynchronous client. Every target reports an `Answer`
(`delivery_record`), the one the delivery's retry policy reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, cast
from urllib.parse import urlsplit

import orjson

from cmdai_cli import redact
from cmdai_cli.commandai import AsyncClient, auth_headers, bulk_identify_url
from cmdai_cli.js_json import dumps
from cmdai_cli.mapping.pipeline import Mapper, make_mapper
from cmdai_cli.mapping.webhook import WebhookMapping, apply_mapping
from cmdai_cli.replay.batching import Batch, Builder, UserBuilder, segment_builder, segment_encoding
from cmdai_cli.replay.delivery_record import Answer
from cmdai_cli.replay.options import TargetName
from cmdai_cli.replay.posting import Pool, available
from cmdai_cli.segment.messages import MAX_MESSAGE_BYTES, message_problem
from cmdai_cli.segment.sender import post_batch

DEFAULT_BULK_BATCH = 100


class Prepared(NamedTuple):
    """What `prepare` made of an event.

    `kind` is `send` (with the `item` its target's builder takes, and its `size`),
    `invalid` (a bad record: follows --on-error), `reject` (cannot be sent as it is,
    whatever --on-error says) or `skip` (nothing to send, and nothing wrong).
    """

    kind: Literal["send", "invalid", "reject", "skip"]
    item: Any = None
    size: int = 0
    reason: str | None = None


# Prepared is a NamedTuple; the hot path builds it as a plain tuple, skipping its
# Python-level __new__.
_new_prepared = cast(Callable[[type, tuple[Any, ...]], Prepared], tuple.__new__)


class Target(Protocol):
    name: TargetName
    destination: str

    def prepare(self, event: dict[str, Any]) -> Prepared: ...

    def builder(self, start: int) -> Builder: ...

    async def send(self, batch: Batch) -> Answer: ...

    async def aclose(self) -> None:
        """On the delivery loop, once it has nothing more to send."""

    def close(self, *, abort: bool = False) -> None:
        """After the run; `abort` when it was interrupted: drop what is still going."""


def shown_url(url: str) -> str:
    """A URL as it may be printed: no query string or credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}" + (
        parts.path or ""
    )


# ---------------------------------------------------------------- Segment


@dataclass
class SegmentTarget:
    """Batches to `{host}/v1/batch`, each message kept as it is (ids, context, ...).

    A batch's body is the JSON array of its messages; its events hold the messages."""

    write_key: str
    host: str
    batch_size: int | None = None
    timeout: float = 15.0
    gzip: bool = False
    workers: int = 0
    name: TargetName = "segment"

    def __post_init__(self) -> None:
        redact.register(self.write_key)
        self.destination = f"{shown_url(self.host)}/v1/batch"
        self._pool: Pool | None = None
        if self.workers and available():
            self._pool = Pool(
                self.workers,
                write_key=self.write_key,
                host=self.host,
                timeout=self.timeout,
                gzip=self.gzip,
            )

    def prepare(self, event: dict[str, Any]) -> Prepared:
        problem = message_problem(event)
        if problem is not None:
            return Prepared("invalid", reason=problem)
        size, encoded = segment_encoding(event)
        if size > MAX_MESSAGE_BYTES:
            return Prepared(
                "reject",
                reason=f"the message is {size} bytes; Segment's limit is 32 KB "
                f"({MAX_MESSAGE_BYTES} bytes)",
            )
        return _new_prepared(Prepared, ("send", encoded, size, None))

    def builder(self, start: int) -> Builder:
        return segment_builder(start, self.batch_size)

    async def send(self, batch: Batch) -> Answer:
        if self._pool is not None and batch.body is not None:
            result = await asyncio.wrap_future(self._pool.submit(batch.body))
        else:
            result = await in_thread(
                lambda: post_batch(
                    [pending.event for pending in batch.events],
                    write_key=self.write_key,
                    host=self.host,
                    timeout=self.timeout,
                    gzip=self.gzip,
                )
            )
        if result.ok:
            return Answer(True, result.http_status)
        detail = result.message
        if result.http_status is not None:
            detail = f"Segment answered {result.http_status}: {detail or 'no message'}"
        return Answer(False, result.http_status, detail, result.retry_after)

    async def aclose(self) -> None:
        pass

    def close(self, *, abort: bool = False) -> None:
        if self._pool is not None:
            self._pool.close(abort=abort)


T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    """`fn()` on a thread of its own, awaited. A daemon thread, unlike an executor's, so
    that a stopped replay need not wait for a request nobody will read the answer of."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(T, result))

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:
            error: BaseException | None = exc
            result = None
        else:
            error = None
        with contextlib.suppress(RuntimeError):  # the loop is gone: the replay stopped
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="cmdai-replay-post", daemon=True).start()
    return await future


# ---------------------------------------------------------------- Command AI


@dataclass
class WebhookTarget:
    """POSTs mapped bodies to the webhook URL: one per request, or arrays of `batch_size`.

    Each body is serialised once, as `JSON.stringify` writes it (`cmdai_cli.js_json`),
    and those exact bytes are sent. A single body is signed over its bytes; an array (batch mode) is
    signed over the bytes of its first element, which appear verbatim in the request as
    the text between the opening `[` and the first top-level `,`, as Segment's Webhooks
    destination signs only the first event of a batch.
    """

    url: str
    mapping: WebhookMapping
    shared_secret: str | None = None
    batch_size: int | None = None
    timeout: float = 15.0
    concurrency: int = 4
    name: TargetName = "webhook"

    def __post_init__(self) -> None:
        redact.register(self.shared_secret)
        self.destination = shown_url(self.url)
        self._client = AsyncClient(self.timeout, self.concurrency)

    def prepare(self, event: dict[str, Any]) -> Prepared:
        body = apply_mapping(event, self.mapping)
        try:
            data = dumps(body)
        except TypeError as exc:
            return Prepared("invalid", reason=f"the body cannot be serialised: {exc}")
        return Prepared("send", data, len(data))

    def builder(self, start: int) -> Builder:
        return Builder(start, self.batch_size or 1)

    async def send(self, batch: Batch) -> Answer:
        items: list[bytes] = batch.items
        data = b"[" + b",".join(items) + b"]" if self.batch_size else items[0]
        return await self._client.post_webhook(
            self.url, data, secret=self.shared_secret, signed=items[0]
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def close(self, *, abort: bool = False) -> None:
        pass  # the client is closed on the delivery loop (`aclose`)


@dataclass
class BulkIdentifyTarget:
    """Command AI's recording rules per event, merged per user, POSTed in arrays.

    Body: `[{"id": "<userId>", "properties": {...}}, ...]` to
    `{api_host}/api/{org_id}/bulk-identify/`. User ids are sent as strings (a numeric
    userId and its string form are one user). Events that record nothing (no userId,
    no properties) are skipped, as the webhook would ignore them.
    """

    api_host: str
    org_id: str
    token: str
    mapping: WebhookMapping
    auth_header: str | None = None
    batch_size: int | None = None
    timeout: float = 15.0
    concurrency: int = 4
    name: TargetName = "bulk-identify"

    def __post_init__(self) -> None:
        redact.register(self.token)
        self.url = bulk_identify_url(self.api_host, self.org_id)
        self.destination = shown_url(self.url)
        self._mapper: Mapper = make_mapper("webhook", self.mapping)
        self._headers = auth_headers(self.auth_header, self.token)
        self._client = AsyncClient(self.timeout, self.concurrency)

    def prepare(self, event: dict[str, Any]) -> Prepared:
        record, problem = self._mapper(event)
        if record is None:
            return Prepared("invalid", reason=problem or "bad event")
        if record["ignored"] is not None:
            return Prepared("skip", reason=str(record["ignored"]))
        properties = record["properties"]
        if not properties:
            return Prepared("skip", reason="no user properties")
        return Prepared("send", (str(record["userId"]), properties))

    def builder(self, start: int) -> Builder:
        return UserBuilder(start, self.batch_size or DEFAULT_BULK_BATCH)

    async def send(self, batch: Batch) -> Answer:
        try:
            data = orjson.dumps(batch.items)
        except orjson.JSONEncodeError as exc:
            return Answer(False, 400, f"the request cannot be serialised: {exc}")
        return await self._client.post_bulk_identify(self.url, data, self._headers)

    async def aclose(self) -> None:
        await self._client.aclose()

    def close(self, *, abort: bool = False) -> None:
        pass  # the client is closed on the delivery loop (`aclose`)
