"""A loopback HTTP server that misbehaves on cue and counts what it accepted.

It answers Segment batches (`/v1/batch`), webhook bodies and bulk-identify arrays. A
script of faults decides each request's fate in arrival order (or, with `by_first_id`,
by the first message id the request carries, whatever order requests come in): answer
200, answer an error status (with `Retry-After` if given), drop the connection without
answering, or answer slowly. Every answer can be made late (`delay`, a remote server's
latency), and `rate_limit` answers 429 with `Retry-After` to what passes a token bucket
of that many requests per second. Messages are counted only from requests it answered
200, so the counts are exactly what a client was told had been delivered. Webhook
signatures and credentials are verified on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


OK = Fault()
DROP = Fault("drop")


def status(code: int, retry_after: str | None = None) -> Fault:
    return Fault("status", code, retry_after)


def slow(seconds: float) -> Fault:
    return Fault("slow", delay=seconds)


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
    `Retry-After: {limit_retry_after}` beyond it. `write_key`, `secret` and `auth`
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
            if first is not None:
                script = self.by_first_id.get(first)
                return script.pop(0) if script else OK
            if self.fault_for is not None:
                return self.fault_for(n)
            return self._script.pop(0) if self._script else OK

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
        _reply(handler, 200, {"success": True})

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
