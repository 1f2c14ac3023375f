"""Command AI's two HTTP endpoints: the Segment webhook and bulk-identify.

`Client` holds one blocking httpx client (doctor's single probe); `AsyncClient` one
asynchronous httpx client, for replay, whose delivery loop keeps up to a hundred or so
requests in flight on one thread: a request waiting for its answer costs a suspended
coroutine rather than a thread. Both are made on first use. Each post is made once and
comes back as delivery's `Answer` (`cmdai_cli.replay.delivery_record`); retrying is the
caller's business.

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
import time
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cmdai_cli import __version__, retry
from cmdai_cli.errors import CmdaiError
from cmdai_cli.http_errors import error_for_exception, error_for_failure, error_for_response
from cmdai_cli.replay.delivery_record import Answer

if TYPE_CHECKING:
    import httpx

    from cmdai_cli import http11

# The two HTTP clients are imported where one is first needed, not here, because every
# replay loads this module (its targets) and most use neither: httpx (only behind a
# proxy, and for doctor's probe) would add 50-60 ms to each, and `http11` with h11 (only
# for the Command AI targets) 6 ms to a replay to Segment (python -X importtime, with
# the rest of replay loaded).

USER_AGENT = f"cmdai-replay/{__version__}"


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
                import httpx  # see the note at the top

                from cmdai_cli import http_policy  # loads httpx: see the note at the top

                n = self.concurrency
                self._client = http_policy.client(
                    timeout=self.timeout,
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
        import httpx  # see the note at the top

        from cmdai_cli import http_policy  # as httpx

        try:
            response = http_policy.send(
                self._http(),
                "POST",
                url,
                service=service,
                limit=http_policy.ERROR_BODY_LIMIT,
                seconds=self.timeout,
                content=body,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            return _no_answer(exc, service)
        except http_policy.AnswerTooLarge as exc:
            return _too_large(exc)
        return _answer(response.status_code, response.headers, response.content, url, service)


class AsyncClient:
    """Posts to Command AI from one event loop; `await aclose()` on that loop when done.

    Requests go through `cmdai_cli.http11` (see there why), or through httpx's own
    asynchronous client when a proxy is configured for the URL (HTTP(S)_PROXY, ALL_PROXY,
    NO_PROXY), which that client knows how to use. Either is made on the first post.
    """

    def __init__(self, timeout: float, concurrency: int = 1) -> None:
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self._pool: http11.Pool | None = None
        self._httpx: httpx.AsyncClient | None = None
        self._proxied: dict[str, bool] = {}

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()
        if self._httpx is not None:
            client, self._httpx = self._httpx, None
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

    async def post(self, url: str, body: bytes, headers: dict[str, str], service: str) -> Answer:
        """POST `body` as it is, with `headers` besides the client's own, once; `service`
        names the other end in the answer's detail (`listen --forward-to`'s target)."""
        return await self._post(url, body, headers, service)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], service: str) -> Answer:
        proxied = self._proxied.get(url)
        if proxied is None:
            proxied = self._proxied[url] = _behind_proxy(url)
        if proxied:
            return await self._post_httpx(url, body, headers, service)
        from cmdai_cli import http11  # see the note at the top

        if self._pool is None:
            self._pool = http11.Pool(
                self.timeout,
                keep=self.concurrency,
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            )
        try:
            reply = await self._pool.post(url, body, headers)
        except http11.TransportError as exc:
            error = error_for_failure(exc.kind, str(exc), service=service, method="POST", url=url)
            return Answer(False, None, error.message, timed_out=exc.kind == "timeout")
        if 200 <= reply.status < 300:
            for name, _ in reply.headers:
                if name.endswith(b"ratelimit-remaining"):  # rare: a dict only then
                    quota = {k.decode("latin-1"): v.decode("latin-1") for k, v in reply.headers}
                    remaining, reset = retry.quota_hint(quota, now=time.time())
                    return Answer(True, reply.status, remaining=remaining, reset=reset)
            return Answer(True, reply.status)
        # h11 gives header names in lower case.
        answered = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in reply.headers
        }
        return _answer(reply.status, answered, reply.body, url, service)

    async def _post_httpx(
        self, url: str, body: bytes, headers: dict[str, str], service: str
    ) -> Answer:
        import httpx  # see the note at the top

        if self._httpx is None:
            # httpx's pool scans every connection for each request: kept small.
            n = min(self.concurrency, 16)
            self._httpx = httpx.AsyncClient(
                timeout=self.timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            )
        from cmdai_cli import http_policy  # as httpx

        try:
            response = await http_policy.send_async(
                self._httpx,
                "POST",
                url,
                service=service,
                limit=http_policy.ERROR_BODY_LIMIT,
                seconds=self.timeout,
                content=body,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            return _no_answer(exc, service)
        except http_policy.AnswerTooLarge as exc:
            return _too_large(exc)
        return _answer(response.status_code, response.headers, response.content, url, service)


def _too_large(exc: CmdaiError) -> Answer:
    """An answer whose body passed its cap: its status counts (a 2xx took the request),
    the body is not read."""
    status = getattr(exc, "status", None)
    if status is not None and 200 <= status < 300:
        return Answer(True, status)
    return Answer(False, status, exc.message)


def _behind_proxy(url: str) -> bool:
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _no_answer(exc: httpx.HTTPError, service: str) -> Answer:
    """An httpx failure as an `Answer`, worded by the one mapper."""
    import httpx  # loaded already: its exception is in hand

    error = error_for_exception(exc, service=service)
    return Answer(False, None, error.message, timed_out=isinstance(exc, httpx.TimeoutException))


def _answer(status: int, headers: Mapping[str, str], body: bytes, url: str, service: str) -> Answer:
    """An answer as an `Answer`, with the wait a 429 or 503 asked for and the server's
    quota. `headers` must find lower-case names (httpx's do, whatever the case)."""
    remaining, reset = retry.quota_hint(headers, now=time.time(), refused=status == 429)
    if 200 <= status < 300:
        return Answer(True, status, remaining=remaining, reset=reset)
    wait = retry.parse_retry_after(headers.get("retry-after"))
    if wait is None and status == 429:
        wait = reset
    error = error_for_response(status, headers, body, service=service, method="POST", url=url)
    return Answer(False, status, error.message, wait, remaining=remaining, reset=reset)
