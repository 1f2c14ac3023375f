"""Command AI's two HTTP endpoints: the Segment webhook and bulk-identify.

`Client` holds one blocking httpx client (doctor's single probe); `AsyncClient` one
asynchronous httpx client, for replay, whose delivery loop keeps up to a hundred or so
requests in flight on one thread: a request waiting for its answer costs a suspended
coroutine rather than a thread. Both are made on first use. Each post is made once and
comes back as an `Answer`; retrying is the caller's business.

Facts (shared/reference/integration-facts.md, sections 5 and 6): the webhook takes the
body Segment's Webhooks (Actions) destination sends, signed in `X-Signature` as the hex
HMAC-SHA1 of the JSON body (in batch mode of the first event only); bulk-identify is
`POST {api_host}/api/{org_id}/bulk-identify/` with a bearer token, though one guide uses
an `X-API-KEY` header instead, hence the configurable header name.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import TYPE_CHECKING, NamedTuple

from cmdai_cli import __version__

if TYPE_CHECKING:
    import httpx

USER_AGENT = f"cmdai-replay/{__version__}"


class Answer(NamedTuple):
    """The answer to one request: `status` None when none came (`timed_out` if none came
    in time)."""

    ok: bool
    status: int | None
    detail: str | None = None
    retry_after: float | None = None
    timed_out: bool = False


def signature(secret: str, data: bytes) -> str:
    """`X-Signature`: the hex HMAC-SHA1 of `data` with the shared secret."""
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha1).hexdigest()


def auth_headers(header: str | None, token: str) -> dict[str, str]:
    """`Authorization: Bearer <token>` by default; any other header name carries the token."""
    name = (header or "Authorization").strip()
    if name.lower() == "authorization":
        return {"Authorization": f"Bearer {token}"}
    return {name: token}


def bulk_identify_url(api_host: str, org_id: str) -> str:
    # The trailing slash is part of the endpoint (integration-facts.md, section 6).
    return f"{api_host.rstrip('/')}/api/{org_id}/bulk-identify/"


class Client:
    """Posts to Command AI. Use as a context manager, or call `close`.

    The httpx client is made on the first post, so that a caller with nothing to send
    never loads httpx; threads may post at once, hence the lock.
    """

    def __init__(self, timeout: float, concurrency: int = 1) -> None:
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                n = self.concurrency
                self._client = httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=False,
                    limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                    headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def post_webhook(
        self,
        url: str,
        body: bytes,
        *,
        secret: str | None = None,
        signed: bytes | None = None,
        service: str = "the webhook",
    ) -> Answer:
        """POST `body` to the webhook URL, signed over `signed` (default: the body)."""
        headers: dict[str, str] = {}
        if secret:
            headers["X-Signature"] = signature(secret, body if signed is None else signed)
        return self._post(url, body, headers, service)

    def post_bulk_identify(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST a JSON array of `{"id", "properties"}` to bulk-identify (see `auth_headers`)."""
        return self._post(url, body, headers, "Command AI")

    def _post(self, url: str, body: bytes, headers: dict[str, str], service: str) -> Answer:
        """POST once; the answer, with the wait a 429 or 503 asked for."""
        import httpx

        try:
            response = self._http().post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return _no_answer(exc, service)
        return _answer(response, service)


class AsyncClient:
    """Posts to Command AI from one event loop; `await aclose()` on that loop when done.

    The httpx client is made on the first post, inside the loop that uses it.
    """

    def __init__(self, timeout: float, concurrency: int = 1) -> None:
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            n = self.concurrency
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def post_webhook(
        self, url: str, body: bytes, *, secret: str | None = None, signed: bytes | None = None
    ) -> Answer:
        """As `Client.post_webhook`."""
        headers: dict[str, str] = {}
        if secret:
            headers["X-Signature"] = signature(secret, body if signed is None else signed)
        return await self._post(url, body, headers, "the webhook")

    async def post_bulk_identify(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """As `Client.post_bulk_identify`."""
        return await self._post(url, body, headers, "Command AI")

    async def _post(self, url: str, body: bytes, headers: dict[str, str], service: str) -> Answer:
        import httpx

        try:
            response = await self._http().post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return _no_answer(exc, service)
        return _answer(response, service)


def _no_answer(exc: httpx.HTTPError, service: str) -> Answer:
    import httpx

    from cmdai_cli import http_errors

    error = http_errors.error_for_exception(exc, service=service)
    return Answer(False, None, error.message, timed_out=isinstance(exc, httpx.TimeoutException))


def _answer(response: httpx.Response, service: str) -> Answer:
    """A response as an `Answer`, with the wait a 429 or 503 asked for."""
    status = response.status_code
    if 200 <= status < 300:
        return Answer(True, status)
    from cmdai_cli import http_errors, retry

    wait = retry.parse_retry_after(response.headers.get("Retry-After"))
    if wait is None and status == 429:
        import time

        wait = retry.parse_reset(response.headers.get("X-RateLimit-Reset"), now=time.time())
    error = http_errors.error_for_response(response, service=service)
    return Answer(False, status, error.message, wait)
