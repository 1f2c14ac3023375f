"""Sending batches from a few worker threads, at a bounded rate, with the one retry policy.

The reading thread hands batches to `Delivery.submit`, which blocks while every worker
is busy and the queue (one batch per worker) is full, so memory stays bounded however
long the input. Each worker sends a batch, retries what `RetryPolicy` says to retry,
and reports the batch as acknowledged or as failed for good. After `stop()` no batch is
started and no retry made: what was not answered stays unrecorded, for a resume.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cmdai_cli.commandai import Answer
from cmdai_cli.replay.batching import Batch
from cmdai_cli.retry import RetryPolicy


class RateLimiter:
    """At most `rate` events per second on average, with bursts of up to one second's worth.

    A caller reserves its events and then sleeps off any debt outside the lock, so
    callers are served in the order they asked.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.clock = clock
        self._tokens = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self, count: int) -> float:
        """Take `count` events' worth; the seconds the caller must wait first."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= count
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class Counters:
    """What the workers did; read by the summary and the progress display."""

    sent: int = 0
    failed: int = 0
    unreachable: int = 0  # of `failed`: no answer, or a 5xx, at the last try
    retries: int = 0
    requests: int = 0
    abandoned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


Acked = Callable[[Batch, Answer], None]
Failed = Callable[[Batch, str, int | None, int], None]


class Delivery:
    """A pool of `concurrency` workers sending batches through `send`.

    `on_ack(batch, answer)` runs in the worker after a 2xx; `on_fail(batch, reason,
    status, attempts)` after the last try. Both run before the worker takes the next
    batch, which bounds what can be sent twice after a crash to one batch per worker.
    """

    def __init__(
        self,
        send: Callable[[Batch], Answer],
        *,
        on_ack: Acked,
        on_fail: Failed,
        policy: RetryPolicy,
        concurrency: int = 4,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.send = send
        self.on_ack = on_ack
        self.on_fail = on_fail
        self.policy = policy
        self.limiter = limiter
        self.counters = Counters()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=max(1, concurrency))
        self._threads = [
            threading.Thread(target=self._work, name=f"cmdai-replay-{n}", daemon=True)
            for n in range(max(1, concurrency))
        ]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ the reader's side

    def submit(self, batch: Batch) -> None:
        """Queue a batch, waiting while the workers are all busy."""
        while True:
            self.raise_error()
            if self._stop.is_set():
                return
            try:
                self._queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self, progress: Callable[[], None] | None = None) -> None:
        """Wait until every queued batch is answered for (or abandoned, when stopping)."""
        for _ in self._threads:
            while True:
                try:
                    self._queue.put(None, timeout=0.1)
                    break
                except queue.Full:
                    if progress is not None:
                        progress()
        for thread in self._threads:
            while thread.is_alive():
                thread.join(timeout=0.2)
                if progress is not None:
                    progress()

    def stop(self) -> None:
        """Send nothing more: no new batches, no more retries."""
        self._stop.set()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    # ------------------------------------------------------------------ the workers' side

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._stop.is_set():
                self._abandon(batch)
                continue
            try:
                self._deliver(batch)
            except BaseException as exc:  # a bug or a full disk: stop everything
                if self.error is None:
                    self.error = exc
                self._stop.set()
                self._abandon(batch)

    def _abandon(self, batch: Batch) -> None:
        with self.counters.lock:
            self.counters.abandoned += len(batch)

    def _deliver(self, batch: Batch) -> None:
        if not batch.events:
            self.on_ack(batch, Answer(True, None))
            return
        counters = self.counters
        attempt = 0
        waited = 0.0
        while True:
            if self.limiter is not None:
                delay = self.limiter.reserve(len(batch.events))
                if delay > 0 and self._stop.wait(delay):
                    self._abandon(batch)
                    return
            answer = self.send(batch)
            attempt += 1
            with counters.lock:
                counters.requests += 1
            if answer.ok:
                self.on_ack(batch, answer)
                return
            decision = self.policy.decide(
                attempt,
                waited,
                status=answer.status,
                network_error=answer.status is None,
                server_wait=answer.retry_after,
            )
            if not decision.retry:
                reason = answer.detail or f"HTTP {answer.status}"
                if answer.status is None or answer.status in (408, 429) or answer.status >= 500:
                    reason += f" ({decision.reason})"
                self.on_fail(batch, reason, answer.status, attempt)
                return
            if self._stop.is_set():
                self._abandon(batch)
                return
            with counters.lock:
                counters.retries += 1
            if self._stop.wait(decision.delay):
                self._abandon(batch)
                return
            waited += decision.delay
