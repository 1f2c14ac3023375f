"""`listen --forward-to URL`: each accepted request sent on, once, through replay's delivery.

The receiver's loop hands every request it acknowledged to `Forwarder.submit`, which
only puts it on a queue: the loop never waits for the target. A feeding thread takes
requests from there into `replay.delivery.Delivery`, whose loop sends them (retries with
backoff, the adaptive in-flight limit, 429 and `Retry-After`) and whose recording
thread says what became of each. A request is sent as it came: its path under the
target's, its body's bytes (`Content-Encoding` kept) and its write key where it was
(Basic auth or the body's `writeKey`); `rewrite_key` swaps the key, which re-encodes the
body when the key is inside it. A request with no message is not sent on.

Every request is open from `submit` until it is forwarded or failed for good; a failed
one's messages go to the dead letter (replay's `ErrorLog` lines, which `cmdai replay`
reads). At most `buffer` messages are open at once: a request that would pass it (a
target down for longer than the app keeps sending) is dead-lettered as it comes, so
memory stays bounded and nothing is lost. `drain` ends it all: what is still open after
`drain` seconds is given up on and dead-lettered too, so nothing acknowledged is lost on
a normal stop. A request cut off in flight at that point may have reached the target;
Segment drops a messageId it has seen, so its replay doubles nothing there.
"""

from __future__ import annotations

import base64
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from cmdai_cli.commandai import AsyncClient
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver.options import ForwardOptions
from cmdai_cli.receiver.store import Parsed, Received
from cmdai_cli.replay.batching import Batch, Pending
from cmdai_cli.replay.delivery import Delivery
from cmdai_cli.replay.delivery_record import Answer
from cmdai_cli.replay.errorlog import ErrorLog
from cmdai_cli.replay.targets import shown_url
from cmdai_cli.retry import is_retryable_status

SERVICE = "the forward target"


def default_dead_letter() -> Path:
    # Imported here: `profile` brings pydantic (about 40 ms, python -X importtime), which
    # a listen that never forwards does not otherwise load.
    from cmdai_cli.profile import state_dir

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return state_dir() / "listen" / f"forward-{stamp}.dead-letter.ndjson"


class Intake:
    """One acknowledged request on its way to the target; `state` says where it is:
    `queued`, `retrying`, `forwarded` or `failed` (`outcome` in words).

    Its outcome is reported once the receiver has kept its messages (`kept`), so that
    a report shows every flag they got there (a duplicate messageId, a plan's
    violation), however soon the outcome came.
    """

    __slots__ = (
        "attempts",
        "auth",
        "body",
        "due",
        "encoding",
        "forwarder",
        "is_kept",
        "messages",
        "number",
        "outcome",
        "path",
        "received",
        "received_at",
        "state",
        "status",
    )

    def __init__(
        self,
        forwarder: Forwarder,
        path: str,
        body: bytes,
        encoding: str | None,
        auth: str | None,
        messages: Parsed,
        received_at: str,
    ) -> None:
        self.forwarder = forwarder
        self.path = path
        self.body = body
        self.encoding = encoding
        self.auth = auth
        self.messages = messages
        self.received_at = received_at
        self.received: list[Received] | None = None  # with every flag, once kept
        self.is_kept = False
        self.due = False  # an outcome waits for `kept` to be reported
        self.number = 0
        self.state = "queued"
        self.outcome = "queued"
        self.status: int | None = None
        self.attempts = 0

    def kept(self, received: list[Received] | None) -> None:
        """`store.Linked`: the receiver kept the messages (None: it could not)."""
        self.received = received
        self.forwarder.on_kept(self)

    def rows(self) -> list[Received]:
        """The request's messages as listen shows them (kept ones carry every flag)."""
        if self.received is not None:
            return self.received
        return [
            Received(message, flags, self.received_at, self.path, raw)
            for message, raw, flags in self.messages
        ]


@dataclass
class ForwardCounts:
    """Messages by what became of their request; `pending` ones are not answered for yet."""

    target: str
    forwarded: int = 0
    retrying: int = 0
    failed: int = 0
    pending: int = 0
    requests: int = 0  # requests forwarded
    dead_letter: Path | None = None
    drained: bool = True  # every open forward was answered for before the drain's end
    hurried: bool = False  # a second Ctrl-C cut the drain short
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "forwarded": self.forwarded,
            "retrying": self.retrying,
            "failed": self.failed,
            "pending": self.pending,
            "requests": self.requests,
            "deadLetter": str(self.dead_letter) if self.failed else None,
        }


class Forwarder:
    """Forwards acknowledged requests (`submit`), then `drain`; see the module docstring.

    `on_outcome` is told, on a thread of its own, when a request first waits for a retry
    and when it is forwarded or failed for good.
    """

    def __init__(
        self, options: ForwardOptions, on_outcome: Callable[[Intake], Any] | None = None
    ) -> None:
        self.options = options
        self.on_outcome = on_outcome
        self.dead_letter = options.dead_letter or default_dead_letter()
        self.shown = shown_url(options.url)
        self.counts = ForwardCounts(self.shown, dead_letter=self.dead_letter)
        self._base = options.url.rstrip("/")
        self._extra = dict(options.headers)
        # An Authorization given with --forward-header is sent instead of the app's.
        self._own_auth = any(name.lower() == "authorization" for name in self._extra)
        self._key_auth = (
            None
            if options.rewrite_key is None
            else "Basic " + base64.b64encode(f"{options.rewrite_key}:".encode()).decode("ascii")
        )
        self._incoming: queue.SimpleQueue[Intake | None] = queue.SimpleQueue()
        self._reports: queue.SimpleQueue[Intake | None] = queue.SimpleQueue()
        self._open: dict[int, Intake] = {}
        self._unkept: dict[int, Intake] = {}  # outcomes waiting for `on_kept`
        self._numbers = 0
        self._settled = threading.Condition()
        self._stopping = False
        self._hurried = False  # a second Ctrl-C: the drain ends now
        self._dead = ErrorLog(self.dead_letter, self.shown)
        self._client = AsyncClient(options.timeout, options.concurrency)
        self._delivery: Delivery | None = None
        self._feeder: threading.Thread | None = None
        self._reporter: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._delivery is not None

    def start(self) -> Forwarder:
        """Check the dead letter can be written, then start sending."""
        where = self.dead_letter.parent
        try:
            where.mkdir(mode=0o700, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            # A file where a directory of the path should be.
            raise UsageError(f"{where}: not a directory, so no dead letter can go there") from None
        except OSError as exc:
            raise UsageError(f"{where}: cannot hold the dead letter: {exc.strerror}") from None
        if self.dead_letter.is_dir():
            raise UsageError(f"{self.dead_letter}: is a directory, not a dead-letter file")
        self._delivery = Delivery(
            self._send,
            on_ack=self._acked,
            on_fail=self._failed,
            policy=self.options.policy,
            concurrency=self.options.concurrency,
            flush=self._dead.sync,
            close=self._client.aclose,
            grace=1.0,
        )
        self._feeder = threading.Thread(target=self._feed, name="cmdai-forward-feed", daemon=True)
        self._feeder.start()
        self._reporter = threading.Thread(
            target=self._report, name="cmdai-forward-report", daemon=True
        )
        self._reporter.start()
        return self

    # ------------------------------------------------------------------ the receiver's side

    def take(
        self,
        target: str,
        body: bytes,
        encoding: str | None,
        auth: str | None,
        messages: Parsed,
        received_at: str,
    ) -> Intake:
        """`Routes.forward`: an acknowledged request, taken (see `submit`)."""
        intake = Intake(self, target, body, encoding, auth, messages, received_at)
        self.submit(intake)
        return intake

    def submit(self, intake: Intake) -> None:
        """Take an acknowledged request; never waits (runs on the receiver's loop)."""
        n = len(intake.messages)
        if not n:
            return
        counts = self.counts
        with counts.lock:
            self._numbers += 1
            intake.number = self._numbers
            # One request bigger than the buffer still goes when nothing else waits.
            full = counts.pending > 0 and counts.pending + n > self.options.buffer
            if not full:
                self._open[intake.number] = intake
                counts.pending += n
        if full:
            self._overflow(intake)
            return
        self._incoming.put(intake)

    def _overflow(self, intake: Intake) -> None:
        """Dead-letter a request that the buffer has no room for (see the module docstring)."""
        reason = f"the forward buffer was full (--forward-buffer {self.options.buffer:,})"
        self._bury(intake, reason, None, 0)
        # Written now: the buffer fills while the target is down, when nothing else
        # writes the dead letter, and a stop that cannot wait must not lose these.
        self._dead.flush()
        with self.counts.lock:
            intake.state = "failed"
            self.counts.failed += len(intake.messages)
        self._tell(intake)

    def summary(self) -> dict[str, Any]:
        with self.counts.lock:
            return self.counts.as_json()

    # ------------------------------------------------------------------ feeding

    def _feed(self) -> None:
        delivery = self._delivery
        assert delivery is not None
        while (intake := self._incoming.get()) is not None:
            if self._stopping:
                continue  # stays open: dead-lettered by `drain`
            # The delivery counts a batch's events (its rate and counters) and reads
            # nothing else of them: the messages themselves stay with the intake.
            events = [Pending(intake.number, "listen", None, {})] * len(intake.messages)
            batch = Batch(intake.number, intake.number + 1, [intake], events)
            try:
                delivery.submit(batch)
            except BaseException:  # the delivery failed: the rest waits for `drain`
                self._stopping = True

    def _request(self, intake: Intake) -> tuple[bytes, dict[str, str]]:
        headers = dict(self._extra)
        body = intake.body
        encoding = intake.encoding
        auth = None if self._own_auth else intake.auth
        if self._key_auth is not None:
            body, in_body = self._rewrite(intake)
            if body is not intake.body:
                encoding = None  # re-encoded, uncompressed
            if not self._own_auth and (auth or not in_body):
                auth = self._key_auth
        if encoding:
            headers["Content-Encoding"] = encoding
        if auth:
            headers["Authorization"] = auth
        return body, headers

    def _rewrite(self, intake: Intake) -> tuple[bytes, bool]:
        """The body with `rewrite_key` for its `writeKey`, and whether it had one."""
        # Imported here: only a rewritten key needs the body decoded.
        from cmdai_cli.receiver.protocol import Rejected, decode_body

        try:
            value = orjson.loads(decode_body(intake.body, intake.encoding))
        except (orjson.JSONDecodeError, Rejected):
            return intake.body, False
        if type(value) is not dict or "writeKey" not in value:
            return intake.body, False
        value["writeKey"] = self.options.rewrite_key
        return orjson.dumps(value), True

    async def _send(self, batch: Batch) -> Answer:
        intake: Intake = batch.items[0]
        body, headers = self._request(intake)
        answer = await self._client.post(self._base + intake.path, body, headers, SERVICE)
        intake.attempts += 1
        intake.status = answer.status
        if not answer.ok and (answer.status is None or is_retryable_status(answer.status)):
            first = False
            with self.counts.lock:
                if intake.state == "queued":
                    intake.state = "retrying"
                    self.counts.retrying += len(intake.messages)
                    first = True
            intake.outcome = f"retrying: {answer.detail or f'HTTP {answer.status}'}"
            if first:
                self._tell(intake)
        return answer

    # ------------------------------------------------------------------ recording

    def _close(self, intake: Intake, state: str) -> None:
        n = len(intake.messages)
        with self.counts.lock:
            if self._open.pop(intake.number, None) is None:
                return
            if intake.state == "retrying":
                self.counts.retrying -= n
            intake.state = state
            self.counts.pending -= n
            if state == "forwarded":
                self.counts.forwarded += n
                self.counts.requests += 1
            else:
                self.counts.failed += n
        self._tell(intake)
        with self._settled:
            self._settled.notify_all()

    def _acked(self, batch: Batch, answer: Answer) -> None:
        intake: Intake = batch.items[0]
        tries = f" after {intake.attempts} tries" if intake.attempts > 1 else ""
        intake.outcome = f"forwarded {answer.status}{tries}"
        self._close(intake, "forwarded")

    def _failed(self, batch: Batch, reason: str, status: int | None, attempts: int) -> None:
        intake: Intake = batch.items[0]
        self._bury(intake, reason, status, attempts)
        self._close(intake, "failed")

    def _bury(self, intake: Intake, reason: str, status: int | None, attempts: int) -> None:
        intake.outcome = f"failed: {reason}"
        for index, (message, _, _) in enumerate(intake.messages):
            self._dead.write(
                reason,
                event=message,
                source=intake.path,
                index=index,
                status=status,
                attempts=attempts,
            )

    def _tell(self, intake: Intake) -> None:
        """Report the intake's outcome now, or once its messages are kept."""
        with self.counts.lock:
            if not intake.is_kept:
                intake.due = True
                self._unkept[intake.number] = intake
                return
        self._reports.put(intake)

    def on_kept(self, intake: Intake) -> None:
        """The receiver kept the intake's messages: an outcome waiting for it is reported."""
        with self.counts.lock:
            intake.is_kept = True
            due, intake.due = intake.due, False
            self._unkept.pop(intake.number, None)
        if due:
            self._reports.put(intake)

    def _report(self) -> None:
        while (intake := self._reports.get()) is not None:
            if self.on_outcome is not None:
                # A report that failed is no reason to stop forwarding.
                with contextlib.suppress(Exception):
                    self.on_outcome(intake)

    # ------------------------------------------------------------------ the end

    HURRY_STEP = 0.1  # how soon the drain sees `hurry`

    def hurry(self) -> bytes:
        """End the drain now (a second Ctrl-C): what is open goes to the dead letter.
        Safe in a signal handler: it sets a flag and takes no lock."""
        self._hurried = True
        self.counts.hurried = True
        return (
            f"cmdai: stopping at once: what is still being forwarded goes to "
            f"{self.dead_letter} (Ctrl-C again leaves it unwritten)\n"
        ).encode()

    def drain(self, timeout: float | None = None) -> ForwardCounts:
        """Forward what is open for up to `timeout` seconds (default: the options'
        `drain`), then give up on the rest: its messages go to the dead letter."""
        delivery, feeder = self._delivery, self._feeder
        assert delivery is not None and feeder is not None
        wait = self.options.drain if timeout is None else timeout
        self._incoming.put(None)
        deadline = time.monotonic() + wait
        with self._settled:
            # In steps: `hurry` runs in a signal handler, which must not notify.
            while (
                self._open
                and delivery.error is None
                and not self._hurried
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._settled.wait(min(remaining, self.HURRY_STEP))
        drained = not self._open
        if not drained:
            self._stopping = True
            delivery.stop()
        while feeder.is_alive():  # not join: see Delivery.finish
            feeder.join(0.2)
        delivery.finish()
        with self.counts.lock:
            left = sorted(self._open.values(), key=lambda intake: intake.number)
        reason = (
            "not forwarded: listen was stopped at once (a second Ctrl-C)"
            if self._hurried
            else f"not forwarded when listen stopped (--drain {wait:g} s)"
        )
        for intake in left:
            self._bury(intake, reason, intake.status, intake.attempts)
            self._close(intake, "failed")
        self._dead.close()
        with self.counts.lock:
            # The receiver has stopped: what it has not kept by now it never will.
            unkept, self._unkept = list(self._unkept.values()), {}
        for intake in unkept:
            self._reports.put(intake)
        self._reports.put(None)
        reporter = self._reporter
        if reporter is not None:
            reporter.join(5)
        self.counts.drained = drained
        return self.counts
