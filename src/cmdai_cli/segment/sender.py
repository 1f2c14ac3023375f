"""The one place that talks to segment-analytics-python, and what came of each message.

`Sender` sends messages through the library's `Client` and reports, per message,
whether Segment accepted it (2xx), refused it (a 4xx: status and Segment's message), or
could not be reached (no answer, or a 5xx after every retry: what failed). It works
around the library's ways of losing events: a full queue is waited out instead of
dropping, every send ends in a bounded flush, the error callback cannot raise, one
consumer thread is used and stopped by us (never `thread=N`, never `sync_mode`), and
oversized messages are reported before sending.

`post_batch` sends one ready batch through the library's own transport without its
retries, so a caller with its own retry policy (replay) sees each answer.

It takes plain values (a write key, a host, a time-out), never the profile: commands
resolve their settings and pass them down. What to tell the user about Segment's
answers (`not_taken`, the hints) is written here once, for every command that sends.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cmdai_cli import http_errors, redact
from cmdai_cli.segment.messages import REGION_HOSTS, check_message, parse_timestamp
from cmdai_cli.values import check_url

# segment-analytics-python (with requests under it) takes 70 ms and more to import
# (python -X importtime): it is imported where a message is sent, so that the modules
# that only read this one's rules and hints (doctor, send-test's output, replay's
# parent process, whose worker sends) never pay for it.

DEFAULT_TIMEOUT = 15.0
# Retries after a failed request. The library's default is 10 with a backoff of 0, 0.5,
# 1, 2 s ... (segment-analytics-python 2.4, consumer.py); three keep a failing send
# within about 1.5 s, and the timeout caps them anyway.
MAX_RETRIES = 3

Status = Literal["accepted", "refused", "unreachable", "invalid"]

log = logging.getLogger("cmdai")


@dataclass(frozen=True)
class Outcome:
    """What happened to one message.

    `status` is `accepted` (Segment answered 2xx), `refused` (it answered and would not
    take it, a 4xx: `http_status` and Segment's message in `detail`), `unreachable` (no
    answer, or a 5xx on every attempt: `detail` says what failed, `http_status` holds the
    last 5xx), or `invalid` (not sent: `detail` says why).
    """

    message_id: str | None
    type: str | None
    status: Status
    http_status: int | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "accepted"


def answered_status(http_status: int) -> Status:
    """How a send that ended with this HTTP error counts: one rule for every command.

    A 4xx (and a 3xx nobody followed) is `refused`: the service answered and will not
    take the message as sent. A 5xx is `unreachable`: the service kept failing, the same
    as not answering, and the message may go through later.
    """
    return "unreachable" if http_status >= 500 else "refused"


# What to tell the user about Segment's answers, for every command that sends to it.
DEBUGGER = "Segment's Source Debugger (Connections > Sources > your source > Debugger)"
SEGMENT_HOST_HINT = (
    "the host should be Segment's Tracking API: https://api.segment.io (us) or "
    "https://events.eu1.segmentapis.com (eu); set --host or $CMDAI_SEGMENT_HOST"
)
NETWORK_HINT = "check the host and the network (proxy, firewall)"
# What to do about each refusal of Segment's Tracking API. Its HTTP API docs: 400 for a
# body over the size limits or not JSON, 429 when rate limited; the write key is the
# request's only credential, so 401/403 point at it (or at a workspace of the other region).
SEGMENT_HINTS = {
    400: "Segment refused the request body",
    401: "check the write key (`cmdai connect`)",
    403: "check the write key and the region (`--region eu` for EU workspaces)",
    404: SEGMENT_HOST_HINT,
    429: "rate limited: wait and try again",
}
SERVER_FAILED_HINT = "Segment's side failed; try again later"


def segment_hint(status: int | None) -> str | None:
    """What to do about Segment's answer `status`, when there is something to say."""
    return SEGMENT_HINTS.get(status or 0)


def not_taken(host: str, status: int | None, detail: str, what: str = "") -> tuple[str, str]:
    """(what was seen, hint) for an answer that is not a success; `what` names the request.

    A 5xx is a failure on Segment's side, not a refusal (the same rule as the exit codes).
    """
    about = f" {what}" if what else ""
    if status is not None and status >= 500:
        return f"{host} failed{about}: HTTP {status}: {detail}", SERVER_FAILED_HINT
    return (
        f"{host} refused{about}: HTTP {status}: {detail}",
        segment_hint(status) or SEGMENT_HOST_HINT,
    )


def host_for(region: str | None = None, host: str | None = None) -> str:
    """The Tracking API base URL: an explicit host wins, else the region's (default us)."""
    if host is not None:
        return check_url(host)
    return REGION_HOSTS[region or "us"]


def _quiet_library_log() -> None:
    # The library logs every failure (and, at debug, whole bodies with the write key) to
    # the "segment" logger; its outcomes reach the user through ours instead.
    lib_log = logging.getLogger("segment")
    if not any(isinstance(h, logging.NullHandler) for h in lib_log.handlers):
        lib_log.addHandler(logging.NullHandler())
    lib_log.propagate = False


# The most of an answer of the Tracking API read (it answers `{"success": true}` or a
# short error): the rest is not read.
MAX_ANSWER = 64 * 1024


def _install_session() -> None:
    """Put cmdai's HTTP policy under the library: it posts through the one requests
    Session it creates at import (`segment.analytics.request._session`, a module global
    its `post` looks up on every call), which would follow redirects (with the write key,
    in the body and in Basic auth), give each read of the answer the whole time-out
    again, and read any answer whole. This session follows none (a 3xx reaches the
    library as an answer, which it refuses), ends a request at its time-out however
    slowly the headers or the body come, and reads at most `MAX_ANSWER` bytes of a body.
    """
    from segment.analytics import request as library  # see the note at the top

    session_class = _policy_session_class()
    if not isinstance(library._session, session_class):
        library._session = session_class()


_SESSION_CLASS: Any = None
# The connections that the requests of each thread are using (see `_policy_session_class`).
_IN_USE = threading.local()


def _policy_session_class() -> Any:
    global _SESSION_CLASS
    if _SESSION_CLASS is not None:
        return _SESSION_CLASS
    import socket

    import requests  # loaded with the library: see the note at the top
    import urllib3
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection

    from cmdai_cli.http_policy import Inflater, iter_chunks

    # urllib3 gives each read of a socket the whole time-out: a server sending a byte of
    # its headers now and then holds a request for ever. A watchdog ends the request at
    # its time-out by shutting down the socket it uses, which the connection classes
    # below tell it (each records itself for its thread when it sends a request).
    def mark(connection: Any) -> None:
        box = getattr(_IN_USE, "box", None)
        if box is not None:
            box.append(connection)

    class Connection(HTTPConnection):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            mark(self)
            return super().request(*args, **kwargs)

    class SecureConnection(HTTPSConnection):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            mark(self)
            return super().request(*args, **kwargs)

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}

    def cut(box: list[Any], fired: threading.Event) -> None:
        fired.set()
        for connection in box:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    class PolicySession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.mount("http://", Adapter())
            self.mount("https://", Adapter())

        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["allow_redirects"] = False
            kwargs["stream"] = True
            timeout = kwargs.get("timeout")
            seconds = float(timeout) if isinstance(timeout, (int, float)) else None
            box: list[Any] = []
            fired = threading.Event()
            watchdog = None
            if seconds is not None:
                watchdog = threading.Timer(seconds, cut, (box, fired))
                watchdog.daemon = True
                watchdog.start()
            _IN_USE.box = box
            try:
                response = super().request(method, url, *args, **kwargs)
                try:
                    response._content = _read_answer(response)
                finally:
                    response.close()
            except requests.RequestException:
                if fired.is_set():
                    raise requests.exceptions.ReadTimeout(
                        f"no complete answer within {seconds:g} s"
                    ) from None
                raise
            finally:
                _IN_USE.box = None
                if watchdog is not None:
                    watchdog.cancel()
            if fired.is_set():
                raise requests.exceptions.ReadTimeout(f"no complete answer within {seconds:g} s")
            response.headers.pop("content-encoding", None)
            return response

    def _read_answer(response: Any) -> bytes:
        try:
            inflater = Inflater(response.headers.get("content-encoding"), MAX_ANSWER)
        except ValueError:
            inflater = Inflater(None, MAX_ANSWER)
        try:
            for chunk in iter_chunks(response.raw.read):
                inflater.feed(chunk)
        except (OverflowError, ValueError):
            pass  # what was read is enough for a status and a message
        return inflater.body()[:MAX_ANSWER]

    _SESSION_CLASS = PolicySession
    return PolicySession


def _redirect_detail(exc: Any) -> str | None:
    """The one wording of a refused redirect, for a library error that carries a 3xx."""
    status = getattr(exc, "status", None)
    response = getattr(exc, "response", None)
    if not isinstance(status, int) or not 300 <= status < 400 or response is None:
        return None
    url = getattr(getattr(response, "request", None), "url", None)
    error = http_errors.error_for_response(
        status,
        dict(response.headers),
        b"",
        service="the Tracking API",
        method="POST",
        url=str(url) if url else None,
    )
    return error.message


def describe_failure(exc: BaseException, timeout: float | None = None) -> str:
    """A one-line account of a transport failure, without a library's long chains."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = str(exc)
    if names & {"Timeout", "ReadTimeout", "ConnectTimeout", "TimeoutError"}:
        after = f" after {timeout:g}s" if timeout else ""
        return f"no answer{after} (timed out)"
    if "ConnectionError" in names or isinstance(exc, OSError):
        reason = re.search(r"\[Errno [^\]]+\][^'\")]*", text)
        if reason:
            return f"could not connect: {reason.group(0).strip()}"
        if "RemoteDisconnected" in text or "Connection aborted" in text:
            return "the connection was closed before an answer"
        return "could not connect"
    if "InvalidURL" in names or "MissingSchema" in names:
        return f"invalid host URL: {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call_args(message: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = str(message["type"])
    args: dict[str, Any] = {
        "context": copy.deepcopy(dict(message.get("context") or {})),
        "integrations": copy.deepcopy(dict(message.get("integrations") or {})),
        "timestamp": parse_timestamp(message.get("timestamp")),
        "message_id": message.get("messageId"),
    }
    if kind != "alias":
        args["anonymous_id"] = message.get("anonymousId")
    args["user_id"] = message.get("userId")
    if kind in ("identify", "group"):
        args["traits"] = copy.deepcopy(dict(message.get("traits") or {}))
    if kind in ("track", "page", "screen"):
        args["properties"] = copy.deepcopy(dict(message.get("properties") or {}))
    if kind == "track":
        args["event"] = message.get("event")
    if kind in ("page", "screen"):
        args["name"] = message.get("name")
        args["category"] = message.get("category")
    if kind == "group":
        args["group_id"] = message.get("groupId")
    if kind == "alias":
        args["previous_id"] = message.get("previousId")
    return kind, args


class Sender:
    """A segment-analytics-python client that reports what became of every message.

    Use as a context manager, or call `close()`: it stops the library's consumer thread
    so nothing waits on it at interpreter exit.
    """

    def __init__(
        self,
        write_key: str,
        host: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        gzip: bool = True,
        upload_size: int = 100,
        upload_interval: float = 0.05,
        max_queue_size: int = 10_000,
    ) -> None:
        from segment.analytics import Client  # see the note at the top

        _quiet_library_log()
        _install_session()
        redact.register(write_key)
        self.host = host.rstrip("/")
        self.timeout = timeout
        self._lock = threading.Lock()
        self._results: dict[str, Outcome] = {}
        self._last_status: int | None = None  # the library's last failed answer
        # One consumer, bounded waits: the overall timeout caps retries and rate limiting.
        self._client = Client(
            write_key,
            host=self.host,
            gzip=gzip,
            timeout=max(0.5, min(timeout, 10.0)),
            max_retries=MAX_RETRIES if max_retries is None else max_retries,
            max_total_backoff_duration=timeout,
            max_rate_limit_duration=timeout,
            max_queue_size=max_queue_size,
            upload_size=upload_size,
            upload_interval=upload_interval,
            on_error=self._on_error,
        )
        # The library registers a join at exit that can wait out a slow request.
        atexit.unregister(self._client.join)
        self._consumer = self._client.consumers[0]
        self._hook_success()

    # ------------------------------------------------------------------ callbacks

    def _hook_success(self) -> None:
        # The library reports failures only; wrapping this consumer's request (and no
        # other) records each batch that came back 2xx, with its status, and the status
        # of a failure: any answer with Retry-After ends as "rate limit ... exceeded".
        original = self._consumer.request

        def request(batch: list[dict[str, Any]]) -> Any:
            try:
                response = original(batch)
            except Exception as exc:
                self._last_status = getattr(exc, "status", None) or self._last_status
                raise
            self._record(batch, "accepted", getattr(response, "status_code", None), None)
            return response

        self._consumer.request = request

    def _record(
        self, batch: Any, status: Status, http_status: int | None, detail: str | None
    ) -> None:
        try:
            with self._lock:
                for item in batch or ():
                    message_id = item.get("messageId") if isinstance(item, Mapping) else None
                    if message_id is None:
                        continue
                    self._results[str(message_id)] = Outcome(
                        str(message_id), item.get("type"), status, http_status, detail
                    )
        except Exception:  # never let bookkeeping break the library's thread
            log.debug("could not record an outcome", exc_info=True)

    def _on_error(self, exc: Any, batch: Any) -> None:
        """The library's error callback. It must never raise: that kills the consumer."""
        try:
            status: Status
            http_status = getattr(exc, "status", None)
            if isinstance(http_status, int):
                status = answered_status(http_status)
                detail = _redirect_detail(exc) or str(getattr(exc, "message", "") or exc)
                if status == "unreachable":
                    detail = f"kept failing with HTTP {http_status}: {detail}"
            elif "rate limit" in str(exc).lower() or "rate-limit" in str(exc).lower():
                # A 503 (or any status) with Retry-After takes this path too: say which.
                http_status = self._last_status or 429
                status = answered_status(http_status)
                what = "rate limited" if http_status == 429 else f"HTTP {http_status}"
                detail = f"{what} with Retry-After for longer than {self.timeout:g}s: {exc}"
            else:
                status, http_status = "unreachable", None
                detail = describe_failure(exc, self._client.timeout)
            self._record(batch, status, http_status, redact.scrub(detail))
        except BaseException:
            log.debug("error callback failed", exc_info=True)

    # ------------------------------------------------------------------ sending

    def send(self, messages: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        """Send every message; return one Outcome each, in order, within `timeout`."""
        deadline = time.monotonic() + self.timeout
        outcomes: list[Outcome | None] = []
        pending: dict[int, tuple[str, str]] = {}
        for message in messages:
            outcome, queued = self._enqueue(message, deadline)
            outcomes.append(outcome)
            if queued is not None:
                pending[len(outcomes) - 1] = queued
        flushed = self._flush(deadline)
        with self._lock:
            results = {mid: self._results.get(mid) for mid, _ in pending.values()}
            for mid in results:
                self._results.pop(mid, None)
        for index, (message_id, kind) in pending.items():
            result = results[message_id]
            if result is None:
                why = (
                    f"no answer from {self.host} within {self.timeout:g}s"
                    if not flushed
                    else "the library finished without reporting this message"
                )
                result = Outcome(message_id, kind, "unreachable", None, why)
            outcomes[index] = result
        return [o for o in outcomes if o is not None]

    def send_one(self, message: Mapping[str, Any]) -> Outcome:
        return self.send([message])[0]

    def _enqueue(
        self, message: Mapping[str, Any], deadline: float
    ) -> tuple[Outcome | None, tuple[str, str] | None]:
        """Queue one message: (None, (messageId, type)) when queued, else (Outcome, None)."""
        if not isinstance(message, Mapping):
            return Outcome(None, None, "invalid", None, "the message is not an object"), None
        given_id, kind_given = message.get("messageId"), message.get("type")
        mid = None if given_id is None else str(given_id)
        problem = check_message(message)
        if problem:
            return Outcome(mid, str(kind_given), "invalid", None, problem), None
        kind, args = _call_args(message)
        while True:
            try:
                queued, built = getattr(self._client, kind)(**args)
            except RuntimeError as exc:  # the library's own 32 KB check
                detail = f"over Segment's 32 KB message limit ({str(exc)[:60]}...)"
                return Outcome(mid, kind, "invalid", None, detail), None
            except (AssertionError, TypeError, ValueError) as exc:
                return Outcome(mid, kind, "invalid", None, str(exc)), None
            message_id = str(built["messageId"])
            args["message_id"] = message_id
            if queued:
                with self._lock:
                    self._results.pop(message_id, None)
                return None, (message_id, kind)
            # Queue full: the library dropped it. Let the queue drain, then enqueue again.
            if not self._flush(deadline):
                why = f"the send queue stayed full for {self.timeout:g}s"
                return Outcome(message_id, kind, "unreachable", None, why), None

    def _flush(self, deadline: float) -> bool:
        """Wait until everything queued has been answered for, or the deadline passes."""
        queue = self._client.queue
        with queue.all_tasks_done:
            while queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._consumer.is_alive():
                    return False
                queue.all_tasks_done.wait(min(remaining, 0.1))
        return True

    def close(self) -> None:
        """Stop the consumer without waiting on a request still in flight."""
        self._consumer.pause()
        self._consumer.join(timeout=1.0)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send(
    messages: Sequence[Mapping[str, Any]],
    *,
    write_key: str,
    host: str,
    timeout: float = DEFAULT_TIMEOUT,
    **options: Any,
) -> list[Outcome]:
    """Send messages with a Sender made for this call and closed after it."""
    with Sender(write_key, host, timeout=timeout, **options) as sender:
        return sender.send(messages)


# ---------------------------------------------------------------------- one batch


@dataclass(frozen=True)
class BatchResult:
    """Segment's answer to one batch request: no retries were made.

    `refused` here means any error status, 5xx included: with one attempt there is no
    "kept failing" yet, so the caller's retry policy reads `http_status` and decides.
    """

    status: Status
    http_status: int | None
    message: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "accepted"


def post_batch(
    batch: Sequence[Mapping[str, Any]],
    *,
    write_key: str,
    host: str,
    timeout: float = DEFAULT_TIMEOUT,
    gzip: bool = True,
    context: Mapping[str, Any] | None = None,
) -> BatchResult:
    """POST one batch body to `{host}/v1/batch` once, keeping every message as given.

    The answer decides nothing here: `retry_after` (seconds, from Retry-After) and the
    status are returned for the caller's retry policy.
    """
    from segment.analytics.request import APIError, parse_retry_after, post  # see the top

    _quiet_library_log()
    _install_session()
    redact.register(write_key)
    # The library reads the messages and never changes them, so plain dicts go as they
    # are; other mappings become dicts for its encoder.
    body: dict[str, Any] = {"batch": [m if type(m) is dict else dict(m) for m in batch]}
    if context:
        body["context"] = dict(context)
    try:
        response = post(write_key, host.rstrip("/"), gzip=gzip, timeout=timeout, **body)
    except APIError as exc:
        retry_after = None
        if exc.response is not None:
            parsed = parse_retry_after(exc.response)
            retry_after = None if parsed is None else float(parsed)
        detail = _redirect_detail(exc) or str(exc.message)
        return BatchResult("refused", exc.status, redact.scrub(detail), retry_after)
    except Exception as exc:
        return BatchResult("unreachable", None, redact.scrub(describe_failure(exc, timeout)))
    return BatchResult("accepted", response.status_code, _success_message(response))


def _success_message(response: Any) -> str | None:
    try:
        text = str(response.text)
    except Exception:
        return None
    return text[:200] or None
