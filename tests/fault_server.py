"""A loopback HTTP server that misbehaves on cue and counts what it accepted.

It answers Segment batches (`/v1/batch`), webhook bodies and bulk-identify arrays. A
script of faults decides each request's fate in arrival order (or, with `by_first_id`,
by the first message id the request carries, whatever order requests come in): answer
200, answer an error status (with `Retry-After` if given), drop the connection without
answering, or answer slowly. Every answer can be made late (`delay`, a remote server's
latency), and a rate limit (`limit`, a `Limiter` of any `Shape`: token buckets, fixed
and sliding windows, each with its own way of saying when to come back) answers 429 to
what goes past it. Messages are counted only from requests it answered
200, so the counts are exactly what a client was told had been delivered. Webhook
signatures and credentials are verified on every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from cmdai_cli.receiver.protocol import Rejected, basic_auth_key, decode_body, parse_encoded


@dataclass(frozen=True)
class Fault:
    """What to do with one request: `ok`, `status`, `drop` or `slow` (then ok)."""

    kind: str = "ok"
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()  # more headers for the answer


OK = Fault()
DROP = Fault("drop")


def status(code: int, retry_after: str | None = None) -> Fault:
    return Fault("status", code, retry_after)


def slow(seconds: float) -> Fault:
    return Fault("slow", delay=seconds)


@dataclass(frozen=True)
class Shape:
    """A rate limit's shape: how it counts, and what its answers say.

    `limiter` is `bucket` (a token bucket refilled at `rate`, holding `burst` seconds'
    worth), `fixed` (at most `rate` requests in each wall-clock second) or `sliding` (at
    most `rate` in any second). `hint` is what a 429 says: `seconds` (`Retry-After` in
    whole seconds, rounded up, as RFC 9110 section 10.2.3 has it), `date` (`Retry-After`
    as an HTTP date), `reset` (no Retry-After; every answer carries GitHub's
    `X-RateLimit-Limit`, `-Remaining` and `-Reset` as a Unix time), `reset-delta` (the
    same with the reset in seconds from now, as the IETF RateLimit header fields draft
    has it) or `none` (a bare 429).
    """

    limiter: str
    rate: float
    burst: float = 0.1
    hint: str = "seconds"


# The shapes of the delivery benchmark and tests, by name: (limiter, burst, hint).
SHAPES: dict[str, tuple[str, float, str]] = {
    "bucket-0.1s": ("bucket", 0.1, "seconds"),
    "bucket-1s": ("bucket", 1.0, "seconds"),
    "fixed-1s": ("fixed", 0.0, "seconds"),
    "sliding-1s": ("sliding", 0.0, "seconds"),
    "retry-after-date": ("fixed", 0.0, "date"),
    "reset-headers": ("fixed", 0.0, "reset"),
    "reset-delta": ("fixed", 0.0, "reset-delta"),
    "no-hint": ("bucket", 1.0, "none"),
}


def shape(name: str, rate: float) -> Shape:
    limiter, burst, hint = SHAPES[name]
    return Shape(limiter, rate, burst, hint)


class Limiter:
    """One `Shape` in action: `admit()` says whether a request passes, and the headers
    its answer carries. Not thread-safe: the caller holds its own lock."""

    def __init__(
        self,
        limit: Shape,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.shape = limit
        self.clock = clock
        self.wall = wall
        self.capacity = max(1.0, limit.burst * limit.rate)
        self._tokens = self.capacity
        self._refilled = clock()
        self._window = -1
        self._count = 0
        self._log: deque[float] = deque()

    def admit(self) -> tuple[bool, dict[str, str]]:
        passed, remaining, wait, reset_at = self._count_request()
        hint = self.shape.hint
        headers: dict[str, str] = {}
        if hint in ("reset", "reset-delta"):
            headers["X-RateLimit-Limit"] = str(int(self.shape.rate))
            headers["X-RateLimit-Remaining"] = str(max(0, remaining))
            if hint == "reset":
                headers["X-RateLimit-Reset"] = str(math.ceil(reset_at))
            else:
                headers["X-RateLimit-Reset"] = str(math.ceil(reset_at - self.wall()))
        elif not passed and hint == "seconds":
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        elif not passed and hint == "date":
            # Whole seconds only: the next second at which a request passes.
            headers["Retry-After"] = formatdate(math.ceil(self.wall() + wait), usegmt=True)
        return passed, headers

    def _count_request(self) -> tuple[bool, int, float, float]:
        """(passed, remaining after it, seconds until one passes, wall time of the reset)"""
        kind = self.shape.limiter
        rate = self.shape.rate
        if kind == "bucket":
            now = self.clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            passed = self._tokens >= 1.0
            if passed:
                self._tokens -= 1.0
            wait = max(0.0, (1.0 - self._tokens) / rate)
            full = (self.capacity - self._tokens) / rate
            return passed, int(self._tokens), wait, self.wall() + full
        if kind == "fixed":
            wall = self.wall()
            window = int(wall)
            if window != self._window:
                self._window, self._count = window, 0
            passed = self._count < rate
            self._count += passed
            left = int(rate) - self._count
            return passed, left, 0.0 if left > 0 else window + 1 - wall, float(window + 1)
        now = self.clock()
        log = self._log
        while log and log[0] <= now - 1.0:
            log.popleft()
        passed = len(log) < rate
        if passed:
            log.append(now)
        left = int(rate) - len(log)
        wait = 0.0 if left > 0 else log[0] + 1.0 - now
        reset = (log[0] + 1.0 - now) if log else 0.0
        return passed, left, wait, self.wall() + reset


@dataclass
class Seen:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    fault: Fault
    items: int = 0
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class FaultServer:
    """Start with `with FaultServer(...) as server:`; send to `server.url`.

    `kind` is `segment`, `webhook` or `bulk`. `faults` is consumed one per request;
    `fault_for(n)` (n counts from 0) is used instead when given; `by_first_id` maps a
    request's first message id to the faults its tries get, one per try. `delay` slows
    every answer. `rate_limit` (requests per second, bursts of `burst`) answers 429 with
    `Retry-After: {limit_retry_after}` beyond it; `limit` is a rate limit of any `Shape`
    instead. `write_key`, `secret` and `auth`
    (header name, value) are checked. `max_active` is the most requests handled at once.
    """

    kind: str = "segment"
    faults: Iterable[Fault] = ()
    fault_for: Callable[[int], Fault] | None = None
    by_first_id: dict[str, list[Fault]] = field(default_factory=dict)
    delay: float = 0.0
    rate_limit: float | None = None
    burst: float = 1.0
    limit_retry_after: str = "1"
    limit: Shape | None = None
    max_active: int = 0
    write_key: str | None = None
    secret: str | None = None
    auth: tuple[str, str] | None = None
    ids: Counter[str] = field(default_factory=Counter)
    bodies: list[Any] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    bad_signatures: int = 0
    bad_auth: int = 0

    def __post_init__(self) -> None:
        self._script = list(self.faults)
        self._lock = threading.Lock()
        self._count = 0
        self._active = 0
        self._server: ThreadingHTTPServer | None = None
        self._tokens = self.burst
        self._refilled = time.monotonic()
        self._limiter = Limiter(self.limit) if self.limit is not None else None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FaultServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                owner._handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # Python's default listen backlog is 5: a sender opening many connections at
            # once (after a rate limit's wait) would see some refused by the kernel and
            # time out, as no real server's backlog does.
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that went away mid-answer (a killed sender) is expected here.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ counts

    @property
    def delivered(self) -> int:
        with self._lock:
            return sum(self.ids.values())

    @property
    def duplicates(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.ids.values() if n > 1)

    def answered(self, code: int) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.fault.kind != "drop" and _code(r) == code)

    # ------------------------------------------------------------------ serving

    def _next_fault(self, raw: bytes, headers: Any) -> Fault:
        first = self._first_id(raw, headers) if self.by_first_id else None
        with self._lock:
            n = self._count
            self._count += 1
            if self.rate_limit is not None and not self._take_token():
                return status(429, self.limit_retry_after)
            extra: dict[str, str] = {}
            if self._limiter is not None:
                passed, extra = self._limiter.admit()
                if not passed:
                    return Fault("status", 429, headers=tuple(extra.items()))
            if first is not None:
                script = self.by_first_id.get(first)
                fault = script.pop(0) if script else OK
            elif self.fault_for is not None:
                fault = self.fault_for(n)
            else:
                fault = self._script.pop(0) if self._script else OK
            return replace(fault, headers=tuple(extra.items())) if extra else fault

    def _take_token(self) -> bool:
        # Called with the lock held.
        assert self.rate_limit is not None
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate_limit)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _first_id(self, raw: bytes, headers: Any) -> str | None:
        try:
            body = orjson.loads(decode_body(raw, headers.get("Content-Encoding")))
        except (orjson.JSONDecodeError, Rejected):
            return None
        if isinstance(body, dict):
            body = body.get("batch", [body])
        if not isinstance(body, list) or not body or not isinstance(body[0], dict):
            return None
        item = body[0]
        return str(item.get("messageId", item.get("id", item.get("userId"))))

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until no request is being handled (a killed client's last ones included)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._active == 0:
                    return
            assert time.monotonic() < deadline, "requests still being handled"
            time.sleep(0.005)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            self._answer(handler)
        finally:
            with self._lock:
                self._active -= 1

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        fault = self._next_fault(raw, handler.headers)
        seen = Seen(handler.path, dict(handler.headers.items()), raw, fault)
        with self._lock:
            self.requests.append(seen)
        if self.delay:
            time.sleep(self.delay)
        if fault.kind == "drop":
            handler.close_connection = True
            return
        if fault.kind == "slow":
            time.sleep(fault.delay)
        if fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            extra.update(fault.headers)
            _reply(handler, fault.status, {"code": "fault", "message": "injected"}, extra)
            return
        try:
            ids, body = self._parse(handler, raw)
        except Rejected as exc:
            _reply(handler, exc.status, {"code": exc.code, "message": exc.message})
            return
        with self._lock:
            self.ids.update(ids)
            self.bodies.append(body)
            seen.items = len(ids)
        _reply(handler, 200, {"success": True}, dict(fault.headers))

    def _parse(self, handler: BaseHTTPRequestHandler, raw: bytes) -> tuple[list[str], Any]:
        headers = handler.headers
        if self.kind == "segment":
            body = decode_body(raw, headers.get("Content-Encoding"))
            key = basic_auth_key(headers.get("Authorization"))
            parsed = parse_encoded(
                handler.path, body, self.write_key, key, None, reject_wrong_key=True
            )
            messages = [message for message, _, _ in parsed]
            return [str(m.get("messageId")) for m in messages], messages
        if self.auth is not None and headers.get(self.auth[0]) != self.auth[1]:
            with self._lock:
                self.bad_auth += 1
            raise Rejected(401, "unauthorized", "bad credentials")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Rejected(400, "invalid_request", "invalid JSON") from None
        if self.kind == "webhook":
            self._check_signature(raw, body, headers.get("X-Signature"))
            items = body if isinstance(body, list) else [body]
            return [str(item.get("messageId", item.get("userId"))) for item in items], body
        return [str(item["id"]) for item in body], body

    def _check_signature(self, raw: bytes, body: Any, given: str | None) -> None:
        if self.secret is None:
            return
        if isinstance(body, list):
            # The first element's bytes, exactly as they appear after the opening bracket.
            first = orjson.dumps(body[0])
            signed = (
                first if raw.startswith(b"[" + first + (b"," if len(body) > 1 else b"]")) else b""
            )
        else:
            signed = raw
        expected = hmac.new(self.secret.encode(), signed, hashlib.sha1).hexdigest()
        if not signed or given is None or not hmac.compare_digest(given, expected):
            with self._lock:
                self.bad_signatures += 1
            raise Rejected(401, "unauthorized", "bad signature")


def _code(seen: Seen) -> int:
    return seen.fault.status if seen.fault.kind == "status" else 200


def _reply(
    handler: BaseHTTPRequestHandler,
    code: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    payload = orjson.dumps(body)
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)


class SilentServer:
    """A server that takes connections and reads what comes, and never answers.

    `with SilentServer() as server:`; `server.connections` counts the connections taken.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.connections = 0

    def __enter__(self) -> SilentServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._open.append(conn)
                self.connections += 1
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass
