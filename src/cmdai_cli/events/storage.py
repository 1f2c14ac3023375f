"""Inputs in object storage (`s3://`, `gs://`, `az://`, `https://`, ...) through fsspec.

A URL names one object, a prefix (everything under it, in name order) or a glob
pattern. Listing returns each object's size and version (S3's ETag, GCS's generation)
so that a checkpoint can tell a changed object from the one it recorded. Objects are
read as streams in blocks of `BLOCK_BYTES`, never whole.

fsspec is imported on first use, so start-up (`--help`, Tab completion) never pays for
it. The S3 and GCS backends are the optional extras `cmdai[s3]` (s3fs) and `cmdai[gcs]`
(gcsfs); credentials come the usual way of each cloud, and the S3 endpoint from
`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (MinIO, moto), as botocore reads them.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from cmdai_cli.errors import CmdaiError, ConfigError, DataError, RemoteRefused, RemoteUnreachable
from cmdai_cli.events.archive import day_of, skipped_by_since

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["BLOCK_BYTES", "Entry", "ReadAhead", "is_url", "list_url", "open_url"]

# Bytes fetched per request. Large enough that a request's latency is small beside its
# transfer, small enough that a reader holds little: s3fs's own default is 50 MiB.
BLOCK_BYTES = 8 << 20

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_GLOB_CHARS = re.compile(r"[*?\[]")
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
# Where each backend keeps an object's version in a listing, in the order tried.
_VERSION_KEYS = ("ETag", "etag", "generation", "version_id", "VersionId", "mtime")

_filesystems: dict[str, AbstractFileSystem] = {}

# How long S3 may take to accept a connection and to answer, and how many tries a call
# gets. botocore's own defaults (60 s each, and s3fs's 5 tries of botocore's 5) would let
# an endpoint that accepts connections but never answers hold a run for many minutes;
# with these, such an endpoint ends the run in under a minute (43 s measured: 4 requests
# of 10 s and the backoff between them; docs/scale.md says so).
S3_CONNECT_TIMEOUT = 5.0
S3_READ_TIMEOUT = 10.0
S3_ATTEMPTS = 3


@dataclass(frozen=True)
class Entry:
    """One object: its full URL, size in bytes and version (None when unknown)."""

    url: str
    size: int | None
    version: str | None


def protocol_of(spec: str) -> str | None:
    """The protocol of a URL (`s3`, `gs`, ...), or None for a local path."""
    match = _URL.match(spec)
    return match.group(1).lower() if match else None


def is_url(spec: str) -> bool:
    return protocol_of(spec) is not None


def filesystem(protocol: str) -> AbstractFileSystem:
    """The fsspec filesystem for `protocol`, one per process.

    Raises ConfigError naming the extra to install when its backend is missing, and
    UsageError for a protocol fsspec does not know.
    """
    cached = _filesystems.get(protocol)
    if cached is not None:
        return cached
    import fsspec

    from cmdai_cli.errors import UsageError

    try:
        cls = fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise UsageError(f"{protocol}:// is not a kind of storage cmdai can read") from None
    except ImportError as exc:
        extra = _EXTRAS.get(protocol)
        if extra is not None:
            raise ConfigError(
                f"reading {protocol}:// needs the optional '{extra}' extra",
                hint=f"pip install 'cmdai[{extra}]'",
            ) from None
        raise ConfigError(f"reading {protocol}:// needs a package that is missing: {exc}") from None
    kwargs: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        # botocore reads these itself from 1.31 on; passing them keeps older ones right.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            kwargs["client_kwargs"] = {"endpoint_url": endpoint}
        config: dict[str, Any] = {
            "connect_timeout": S3_CONNECT_TIMEOUT,
            "read_timeout": S3_READ_TIMEOUT,
        }
        if not os.environ.get("AWS_MAX_ATTEMPTS"):
            config["retries"] = {"max_attempts": S3_ATTEMPTS, "mode": "standard"}
        kwargs["config_kwargs"] = config
    elif protocol in ("http", "https"):
        kwargs["client_kwargs"] = _http_client_kwargs()
    try:
        fs: AbstractFileSystem = cls(**kwargs)
    except Exception as exc:
        _fail(exc, f"{protocol}://")
    if protocol in ("s3", "s3a"):
        # botocore already retries each call; s3fs's own loop would repeat all of it.
        fs.retries = 1
    _filesystems[protocol] = fs
    return fs


# How long an http(s) input may take to connect, to send the next bytes of an answer, and
# to answer one request in all (fsspec fetches an object in blocks of `BLOCK_BYTES` where
# the server takes ranges: 60 s for 8 MiB is a slow link, not a server trickling bytes).
HTTP_CONNECT_TIMEOUT = 10.0
HTTP_READ_TIMEOUT = 30.0
HTTP_REQUEST_TIMEOUT = 60.0


class RedirectRefused(RemoteRefused):
    """An http(s) input answered with a redirect, which cmdai does not follow."""


def _http_client_kwargs() -> dict[str, Any]:
    """aiohttp's session settings for http(s) inputs (fsspec's HTTP file system).

    aiohttp follows redirects on its own, and fsspec reads a 3xx it was told not to
    follow as the object itself; a trace hook refuses every redirect before it is
    followed, as every client of cmdai does (`cmdai_cli.http_policy`): an input URL may
    carry a key in its query. Time-outs are per connect and per read: an object may be
    gigabytes long, so the deadline is per request (a block where the server takes
    ranges), not on the whole of it.
    """
    import aiohttp  # fsspec's HTTP file system needs it; loaded with fsspec, see the top

    from cmdai_cli.http_errors import shown_url

    async def refuse(session: Any, context: Any, params: Any) -> None:
        location = params.response.headers.get("Location")
        to = f" to {shown_url(location)}" if location else ""
        raise RedirectRefused(
            f"{shown_url(str(params.url))} answered {params.response.status} redirecting"
            f"{to}; cmdai follows no redirects, so that no key reaches a host it was not "
            "given",
            status=params.response.status,
            hint="give the URL the server redirects to, if it is the right one",
        )

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(refuse)
    return {
        "trace_configs": [trace],
        "timeout": aiohttp.ClientTimeout(
            total=HTTP_REQUEST_TIMEOUT,
            sock_connect=HTTP_CONNECT_TIMEOUT,
            sock_read=HTTP_READ_TIMEOUT,
        ),
    }


def _fail(exc: BaseException, source: str) -> NoReturn:
    """A backend's exception as one of ours: backends raise their own kinds."""
    if isinstance(exc, CmdaiError):
        raise exc
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        # fsspec wraps what went wrong (a refused redirect included) in its own errors.
        if isinstance(cause, CmdaiError):
            raise cause from None
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, FileNotFoundError):
        cause = _connection_failure(exc)
        if cause is not None:
            if isinstance(cause, TimeoutError):
                raise RemoteUnreachable(f"{source}: did not answer in time") from None
            raise RemoteUnreachable(
                f"{source}: cannot be reached ({cause or type(cause).__name__})"
            ) from None
        raise DataError("no such bucket, object or prefix", source=source) from None
    if isinstance(exc, TimeoutError):  # fsspec's FSTimeoutError among them
        raise RemoteUnreachable(
            f"{source}: no complete answer in time (a request may take "
            f"{HTTP_REQUEST_TIMEOUT:g} s, and {HTTP_READ_TIMEOUT:g} s between reads)"
        ) from None
    if isinstance(exc, PermissionError):
        raise RemoteRefused(f"{source}: access denied ({exc})") from None
    if isinstance(exc, ImportError):
        raise ConfigError(f"{source}: a package is missing: {exc}") from None
    raise RemoteUnreachable(f"{source}: {type(exc).__name__}: {exc}") from None


def _connection_failure(exc: FileNotFoundError) -> BaseException | None:
    """The failure to connect behind a "not found", if that is what it was.

    fsspec's HTTP file system answers every failed look-up with FileNotFoundError,
    raised from what went wrong (fsspec/implementations/http.py, `_info`): a refused
    or timed-out connection there is an unreachable server, not a missing object.
    """
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, (ConnectionError, TimeoutError)) or (
            isinstance(cause, OSError) and not isinstance(cause, FileNotFoundError)
        ):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


# ---------------------------------------------------------------- listing


def list_url(spec: str, *, since: datetime | None = None) -> list[Entry]:
    """The objects a URL names: itself, everything under a prefix, or a pattern's matches.

    Under `since`, Segment archive day folders that end before it are left out without
    being listed (see `events.archive`). Hidden names (a leading dot) are skipped, as in
    local directories. Raises DataError when nothing is there.
    """
    protocol = protocol_of(spec)
    assert protocol is not None
    fs = filesystem(protocol)
    try:
        return _list(fs, spec, since)
    except Exception as exc:
        _fail(exc, spec)


def _list(fs: AbstractFileSystem, spec: str, since: datetime | None) -> list[Entry]:
    path = fs._strip_protocol(spec)
    fs.invalidate_cache()  # a listing is taken once per run; never an older one
    if _GLOB_CHARS.search(path):
        found = fs.glob(path, detail=True)
        files = [
            info
            for name, info in sorted(found.items())
            if info.get("type") == "file" and not _hidden(name) and not _early(name, since)
        ]
        if not files:
            raise DataError("no object matches this pattern", source=spec)
        return [_entry(fs, info) for info in files]
    # A name ending in '/' is a prefix: no need to ask whether it is an object.
    if not spec.endswith("/"):
        info = fs.info(path)
        if info.get("type") != "directory":
            return [_entry(fs, info)]
    found = list(_walk(fs, path.rstrip("/"), since))
    if not found and spec.endswith("/") and not fs.exists(path):
        raise FileNotFoundError(path)
    return [_entry(fs, item) for item in found]


def _walk(fs: AbstractFileSystem, path: str, since: datetime | None) -> Iterator[dict[str, Any]]:
    """Files under `path` in name order, hidden ones left out.

    Without `since`, one recursive listing. With it, a listing per folder down to the
    day folders, so that those it skips are never listed.
    """
    if since is None:
        found: dict[str, dict[str, Any]] = fs.find(path, detail=True)
        depth = path.count("/") + 1
        for name, info in sorted(found.items()):
            below = name.split("/")[depth:]
            if info.get("type") == "file" and not any(p.startswith(".") for p in below):
                yield info
        return
    listing: list[dict[str, Any]] = fs.ls(path, detail=True)
    for info in sorted(listing, key=_name):
        name = _name(info)
        if name.rstrip("/") == path or _hidden(name):
            continue
        if info.get("type") == "directory":
            if _early(name, since):
                continue
            yield from _walk(fs, name.rstrip("/"), None if day_of(_base(name)) else since)
        elif info.get("type") == "file":
            yield info


def _name(info: dict[str, Any]) -> str:
    return str(info["name"])


def _base(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def _hidden(name: str) -> bool:
    return _base(name).startswith(".")


def _early(name: str, since: datetime | None) -> bool:
    return since is not None and skipped_by_since(name.split("/"), since)


def _entry(fs: AbstractFileSystem, info: dict[str, Any]) -> Entry:
    version = next((info[key] for key in _VERSION_KEYS if info.get(key) is not None), None)
    size = info.get("size")
    return Entry(
        fs.unstrip_protocol(_name(info)),
        int(size) if size is not None else None,
        str(version).strip('"') if version is not None else None,
    )


# ---------------------------------------------------------------- reading


def open_url(url: str, size: int | None = None) -> IO[bytes]:
    """A stream over one object; its reads raise CmdaiError, never a backend's error.

    `size` (from the listing) saves asking for it again where the backend takes it.
    """
    protocol = protocol_of(url)
    assert protocol is not None
    fs = filesystem(protocol)
    extra: dict[str, Any] = {"size": size} if size is not None and protocol in _SIZED else {}
    try:
        stream: IO[bytes] = fs.open(fs._strip_protocol(url), "rb", block_size=BLOCK_BYTES, **extra)
    except Exception as exc:
        _fail(exc, url)
    return cast(IO[bytes], _Guarded(stream, url))


_SIZED = frozenset({"s3", "s3a"})


class _Guarded:
    """A remote stream whose failures (lost connection, expired credentials) are ours.

    It may start with bytes already fetched (`head`), by `ReadAhead`.
    """

    def __init__(self, stream: IO[bytes], url: str, head: bytes = b"") -> None:
        self._stream = stream
        self._url = url
        self._head = head

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._read(-1), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._read(size)

    def _read(self, size: int) -> bytes:
        try:
            return self._stream.read(size)
        except Exception as exc:
            _fail(exc, self._url)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadAhead:
    """Opens the next object of a list, and fetches its first block, while one is read.

    A request's latency is paid once per object; with many small objects (Segment
    writes one per source about every hour, however few events) it would otherwise
    add up. One object ahead at most, so at most one block more is held.
    """

    def __init__(self, objects: Sequence[tuple[str, int | None]]) -> None:
        self._after = {url: objects[i + 1] for i, (url, _) in enumerate(objects[:-1])}
        self._ahead: tuple[str, Future[_Guarded]] | None = None

    def open(self, url: str, size: int | None) -> IO[bytes]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == url:
            stream = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].add_done_callback(_close_unused)
            stream = _started(url, size, fetch=False)
        following = self._after.get(url)
        if following is not None:
            self._ahead = (following[0], _in_background(*following))
        return cast(IO[bytes], stream)


def _in_background(url: str, size: int | None) -> Future[_Guarded]:
    # A daemon thread: a run that stops (Ctrl-C, --limit) does not wait for the fetch.
    future: Future[_Guarded] = Future()

    def fetch() -> None:
        try:
            future.set_result(_started(url, size))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=fetch, name="cmdai-read-ahead", daemon=True).start()
    return future


def _started(url: str, size: int | None, fetch: bool = True) -> _Guarded:
    stream = cast(_Guarded, open_url(url, size))
    if fetch:
        stream._head = stream._read(BLOCK_BYTES)
    return stream


def _close_unused(future: Future[_Guarded]) -> None:
    if future.exception() is None:
        future.result().close()
