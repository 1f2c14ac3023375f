"""Where a replay sends: Segment, the Command AI webhook, or Command AI's bulk-identify.

Each target turns an event into what it sends (`prepare`), groups those into requests
(`builder`), and sends one request once (`send`), reporting the answer; retrying is the
caller's business. Segment goes through segment-analytics-python's transport; the two
Command AI endpoints through httpx.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, cast
from urllib.parse import urlsplit

import orjson

from cmdai_cli import __version__, redact
from cmdai_cli.replay import batching
from cmdai_cli.replay.batching import Batch, Builder, UserBuilder
from cmdai_cli.segment_client import message_problem
from cmdai_cli.segment_limits import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    import httpx

    from cmdai_cli.mapping.pipeline import Mapper
    from cmdai_cli.mapping.webhook import WebhookMapping

TargetName = Literal["segment", "webhook", "bulk-identify"]
TARGETS: tuple[TargetName, ...] = ("segment", "webhook", "bulk-identify")
USER_AGENT = f"cmdai-replay/{__version__}"
DEFAULT_BULK_BATCH = 100


class Answer(NamedTuple):
    """The target's answer to one request: `status` None when none came."""

    ok: bool
    status: int | None
    detail: str | None = None
    retry_after: float | None = None


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

    def send(self, batch: Batch) -> Answer: ...

    def close(self) -> None: ...


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
        self._pool: Any = None
        if self.workers:
            from cmdai_cli.replay import posting

            if posting.available():
                self._pool = posting.Pool(
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
        size, encoded = batching.segment_encoding(event)
        if size > MAX_MESSAGE_BYTES:
            return Prepared(
                "reject",
                reason=f"the message is {size} bytes; Segment's limit is 32 KB "
                f"({MAX_MESSAGE_BYTES} bytes)",
            )
        return _new_prepared(Prepared, ("send", encoded, size, None))

    def builder(self, start: int) -> Builder:
        return batching.segment_builder(start, self.batch_size)

    def send(self, batch: Batch) -> Answer:
        from cmdai_cli.segment_client import post_batch

        if self._pool is not None and batch.body is not None:
            result = self._pool.post(batch.body)
        else:
            result = post_batch(
                [pending.event for pending in batch.events],
                write_key=self.write_key,
                host=self.host,
                timeout=self.timeout,
                gzip=self.gzip,
            )
        if result.ok:
            return Answer(True, result.http_status)
        detail = result.message
        if result.http_status is not None:
            detail = f"Segment answered {result.http_status}: {detail or 'no message'}"
        return Answer(False, result.http_status, detail, result.retry_after)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


# ---------------------------------------------------------------- HTTP (Command AI)


def post_json(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], service: str
) -> Answer:
    """POST `body` once; the answer, with the wait a 429/503 asked for."""
    import httpx

    from cmdai_cli import http_errors, retry

    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Answer(False, None, http_errors.error_for_exception(exc, service=service).message)
    status = response.status_code
    if 200 <= status < 300:
        return Answer(True, status)
    wait = retry.parse_retry_after(response.headers.get("Retry-After"))
    if wait is None and status == 429:
        import time

        wait = retry.parse_reset(response.headers.get("X-RateLimit-Reset"), now=time.time())
    error = http_errors.error_for_response(response, service=service)
    return Answer(False, status, error.message, wait)


def http_client(timeout: float, concurrency: int) -> httpx.Client:
    import httpx

    return httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
    )


class LazyClient:
    """One shared HTTP client, made on first use: a dry run or a run with nothing to
    send never loads httpx. Delivery threads call `get` at once, hence the lock."""

    def __init__(self, timeout: float, concurrency: int) -> None:
        self.timeout = timeout
        self.concurrency = concurrency
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = http_client(self.timeout, self.concurrency)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def signature(secret: str, data: bytes) -> str:
    """`X-Signature`: the hex HMAC-SHA1 of `data` with the shared secret."""
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha1).hexdigest()


@dataclass
class WebhookTarget:
    """POSTs mapped bodies to the webhook URL: one per request, or arrays of `batch_size`.

    Each body is serialised once, compactly (as `JSON.stringify` does), and those exact
    bytes are sent. A single body is signed over its bytes; an array (batch mode) is
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
        self._http = LazyClient(self.timeout, self.concurrency)

    def prepare(self, event: dict[str, Any]) -> Prepared:
        from cmdai_cli.mapping.webhook import apply_mapping

        body = apply_mapping(event, self.mapping)
        try:
            data = orjson.dumps(body)
        except orjson.JSONEncodeError as exc:
            return Prepared("invalid", reason=f"the body cannot be serialised: {exc}")
        return Prepared("send", data, len(data))

    def builder(self, start: int) -> Builder:
        return Builder(start, self.batch_size or 1)

    def body(self, batch: Batch) -> tuple[bytes, dict[str, str]]:
        items: list[bytes] = batch.items
        data = b"[" + b",".join(items) + b"]" if self.batch_size else items[0]
        headers: dict[str, str] = {}
        if self.shared_secret:
            headers["X-Signature"] = signature(self.shared_secret, items[0])
        return data, headers

    def send(self, batch: Batch) -> Answer:
        data, headers = self.body(batch)
        return post_json(self._http.get(), self.url, data, headers, "the webhook")

    def close(self) -> None:
        self._http.close()


def auth_headers(header: str | None, token: str) -> dict[str, str]:
    """`Authorization: Bearer <token>` by default; any other header name carries the token."""
    name = (header or "Authorization").strip()
    if name.lower() == "authorization":
        return {"Authorization": f"Bearer {token}"}
    return {name: token}


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
        from cmdai_cli.mapping.pipeline import make_mapper

        redact.register(self.token)
        self.url = f"{self.api_host.rstrip('/')}/api/{self.org_id}/bulk-identify/"
        self.destination = shown_url(self.url)
        self._mapper: Mapper = make_mapper("webhook", self.mapping)
        self._headers = auth_headers(self.auth_header, self.token)
        self._http = LazyClient(self.timeout, self.concurrency)

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

    def send(self, batch: Batch) -> Answer:
        try:
            data = orjson.dumps(batch.items)
        except orjson.JSONEncodeError as exc:
            return Answer(False, 400, f"the request cannot be serialised: {exc}")
        return post_json(self._http.get(), self.url, data, self._headers, "Command AI")

    def close(self) -> None:
        self._http.close()
