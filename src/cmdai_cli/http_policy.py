"""The one HTTP client policy of cmdai: no redirects, whole-request deadlines, size caps.

Every client cmdai has (httpx, the h11 pool of `http11`, the requests session under
segment-analytics-python, fsspec's aiohttp) keeps three rules, from here:

- No redirect is followed. Almost every request carries a secret (a write key, a token,
  a shared secret, a key in the URL), and a redirect may point anywhere; a 3xx is an
  answer, refused with the `Location` named (`http_errors.error_for_response`).
- Each request has a whole-request deadline: connecting, sending, the headers and the
  whole body, however slowly a server trickles them. httpx's own time-outs are per read;
  here every read and write is given only what is left of the request's deadline (a
  network stream that clips them), and the body is read in chunks against it too.
- Each answer is read up to a size cap chosen per endpoint, counted on the decoded body:
  gzip and deflate are inflated here, a chunk at a time, never past the cap. Past it,
  `AnswerTooLarge` (exit 5) names the endpoint and the limit.

Credentials in URLs are refused where a URL is given (`values.check_url`, the one URL
check), so none reaches a client.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from cmdai_cli import redact
from cmdai_cli.errors import RemoteRefused

KIB = 1024
MIB = 1024 * KIB
# The size caps, per endpoint. Each is far above what the endpoint really sends, and far
# below what would hurt: cmdai stays under 200 MB whatever a server answers.
# A source's settings on Segment's CDN: tens of KB with many destinations.
CDN_SETTINGS_LIMIT = 4 * MIB
# One page of the Public API: up to 200 items (PAGE_SIZE), a few KB each.
PUBLIC_API_PAGE_LIMIT = 16 * MIB
# One answer of a running `cmdai listen`'s inspection API (messages are up to 32 KB, and
# a query returns at most its `limit` of them).
COLLECTOR_LIMIT = 64 * MIB
# Answers read only for their status and error message: the Tracking API, the webhook,
# bulk-identify.
ERROR_BODY_LIMIT = 64 * KIB

READ_CHUNK = 64 * KIB
ACCEPT_ENCODING = "gzip, deflate"

# The monotonic time by which the request under way must be done (None: no deadline).
# A context variable, so that each thread and each asyncio task has its own.
_ENDS: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "cmdai_http_ends", default=None
)


def size(limit: int) -> str:
    """A size for people: `4 MiB`, `64 KiB`, `100 bytes`."""
    if limit >= MIB and limit % MIB == 0:
        return f"{limit // MIB} MiB"
    if limit >= KIB and limit % KIB == 0:
        return f"{limit // KIB} KiB"
    return f"{limit} bytes"


class AnswerTooLarge(RemoteRefused):
    """An answer larger than its endpoint's cap (decoded): exit 5."""

    def __init__(self, service: str, what: str, limit: int, *, status: int | None = None) -> None:
        super().__init__(
            redact.scrub(f"{service} answered more than {size(limit)} to {what}"),
            status=status,
            hint=f"cmdai reads at most {size(limit)} from this endpoint; "
            "check that the URL points at the right service",
        )
        self.limit = limit


def where(method: str, url: str | httpx.URL) -> str:
    """`METHOD /path` of a request, never its query (which may carry a key)."""
    return f"{method} {urlsplit(str(url)).path or '/'}"


# ---------------------------------------------------------------- decoding with a limit


class Inflater:
    """The decoded body of an answer with `Content-Encoding` `encoding`, fed raw chunks,
    never holding more than `limit` bytes: `feed` raises OverflowError past it."""

    def __init__(self, encoding: str | None, limit: int) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise ValueError(f"content-encoding {encoding!r} is not one cmdai reads")
        self.coding = codings[0] if codings else None
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self._raw_deflate = False
        self._zlib: Any = None
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            # "deflate" is meant as zlib-wrapped; some servers send it raw (as httpx reads it).
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise OverflowError(self.limit)
        if data:
            self.parts.append(data)

    def feed(self, data: bytes) -> None:
        if self._zlib is None:
            self._keep(data)
            return
        while data:
            room = self.limit - self.size + 1
            try:
                out = self._zlib.decompress(data, room)
            except zlib.error:
                if self.coding == "deflate" and not self._raw_deflate and self.size == 0:
                    self._raw_deflate = True
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise ValueError("the answer's compressed body is corrupt") from None
            self._keep(out)
            data = self._zlib.unconsumed_tail
            if self._zlib.eof:
                return

    def body(self) -> bytes:
        return b"".join(self.parts)


def read_limited(
    chunks: Iterable[bytes],
    *,
    encoding: str | None,
    limit: int,
    ends: float | None,
    on_late: Any = None,
) -> bytes:
    """The decoded body from raw `chunks`, within `limit` bytes and the deadline `ends`.

    OverflowError past the limit; `on_late()` (which must raise) once the deadline passed.
    """
    inflater = Inflater(encoding, limit)
    for chunk in chunks:
        inflater.feed(chunk)
        if ends is not None and time.monotonic() >= ends:
            on_late()
    return inflater.body()


# ---------------------------------------------------------------- httpx


class _Stream(httpcore.NetworkStream):
    """A network stream whose reads and writes wait no longer than the request has left."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    @staticmethod
    def _clip(timeout: float | None, late: type[Exception] = httpcore.ReadTimeout) -> float | None:
        """What is left of `timeout` and of the request's deadline; `late` raised when
        nothing is (a time-out of 0 would make the socket non-blocking instead)."""
        ends = _ENDS.get()
        if ends is None:
            return timeout
        left = ends - time.monotonic()
        if left <= 0:
            raise late("the whole-request deadline has passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._clip(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        clipped = self._clip(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, clipped))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        clipped = _Stream._clip(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, clipped, local_address, socket_options)
        return _Stream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(
            self._backend.connect_unix_socket(path, _Stream._clip(timeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def transport(**kwargs: Any) -> httpx.HTTPTransport:
    """An httpx transport whose every read and write keeps to the request's deadline."""
    made = httpx.HTTPTransport(**kwargs)
    # httpx takes no network backend of its own; its pool (httpcore.ConnectionPool) does,
    # and holds it here. tests/test_http_policy.py fails if this stops working.
    pool: Any = made._pool
    pool._network_backend = _Backend(pool._network_backend)
    return made


def client(
    *, timeout: float, headers: Mapping[str, str] | None = None, **kwargs: Any
) -> httpx.Client:
    """A blocking httpx client under this policy (send its requests with `send`)."""
    limits = kwargs.pop("limits", httpx.Limits())
    return httpx.Client(
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        transport=transport(limits=limits),
        limits=limits,
        **kwargs,
    )


def _late(request: httpx.Request, seconds: float) -> httpx.TimeoutException:
    return httpx.ReadTimeout(
        f"no complete answer within {seconds:g} s (the whole-request deadline)", request=request
    )


def _plain_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    # The body handed on is decoded: its encoding and length headers no longer apply.
    return [
        (k, v)
        for k, v in headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]


def _finish(response: httpx.Response, body: bytes, request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=_plain_headers(response.headers),
        content=body,
        request=request,
        extensions={"http_version": response.extensions.get("http_version", b"HTTP/1.1")},
    )


def _check_length(response: httpx.Response, service: str, limit: int) -> None:
    if "content-encoding" in response.headers:
        return
    try:
        length = int(response.headers.get("content-length", ""))
    except ValueError:
        return
    if length > limit:
        raise AnswerTooLarge(
            service,
            where(response.request.method, response.request.url),
            limit,
            status=response.status_code,
        )


def send(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    service: str,
    limit: int,
    seconds: float,
    **kwargs: Any,
) -> httpx.Response:
    """One request through `http` (made by `client`), whole within `seconds`, its decoded
    body within `limit` bytes; redirects come back as answers.

    Returns a read response (its body decoded); raises httpx's errors for no answer (a
    `TimeoutException` when the deadline passed) and `AnswerTooLarge` past the cap.
    """
    request = http.build_request(method, url, **kwargs)
    request.headers["Accept-Encoding"] = ACCEPT_ENCODING
    ends = time.monotonic() + seconds
    token = _ENDS.set(ends)
    try:
        try:
            response = http.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            if time.monotonic() >= ends - 0.01:
                raise _late(request, seconds) from None
            raise
        try:
            _check_length(response, service, limit)

            def late() -> None:
                raise _late(request, seconds)

            body = _read(response.iter_raw(READ_CHUNK), response, service, limit, ends, late)
        except httpx.TimeoutException:
            if time.monotonic() >= ends - 0.01:
                raise _late(request, seconds) from None
            raise
        finally:
            response.close()
    finally:
        _ENDS.reset(token)
    return _finish(response, body, request)


def _read(
    chunks: Iterable[bytes],
    response: httpx.Response,
    service: str,
    limit: int,
    ends: float | None,
    late: Any,
) -> bytes:
    try:
        return read_limited(
            chunks,
            encoding=response.headers.get("content-encoding"),
            limit=limit,
            ends=ends,
            on_late=late,
        )
    except OverflowError:
        raise AnswerTooLarge(
            service,
            where(response.request.method, response.request.url),
            limit,
            status=response.status_code,
        ) from None
    except ValueError as exc:
        raise RemoteRefused(
            redact.scrub(
                f"{service} answered {response.status_code} to "
                f"{where(response.request.method, response.request.url)} with a body "
                f"cmdai cannot read: {exc}"
            ),
            status=response.status_code,
        ) from None


async def send_async(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str,
    limit: int,
    seconds: float,
    **kwargs: Any,
) -> httpx.Response:
    """`send` for an asynchronous client (`follow_redirects=False`): the whole request is
    cancelled when its deadline passes."""
    request = http.build_request(method, url, **kwargs)
    request.headers["Accept-Encoding"] = ACCEPT_ENCODING

    async def exchange() -> httpx.Response:
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            _check_length(response, service, limit)
            raw = [chunk async for chunk in _capped(response.aiter_raw(READ_CHUNK), limit)]
        finally:
            await response.aclose()
        body = _read(raw, response, service, limit, None, None)
        return _finish(response, body, request)

    try:
        return await asyncio.wait_for(exchange(), seconds)
    except asyncio.TimeoutError:
        raise _late(request, seconds) from None


async def _capped(chunks: Any, limit: int) -> Any:
    """Raw chunks until somewhat past `limit` raw bytes (a compressed body is smaller
    than its decoding, so this cuts only what would be refused anyway)."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        yield chunk
        if seen > limit:
            return


def iter_chunks(read: Any, size_: int = READ_CHUNK) -> Iterator[bytes]:
    """Chunks from a `read(n)` function until it returns nothing."""
    while True:
        chunk = read(size_)
        if not chunk:
            return
        yield chunk
