"""Sending batches so that waiting never holds up sending.

The reading thread hands batches to `Delivery.submit`. An event loop on a thread of its
own sends them: as many requests in flight as the adaptive limit allows (`--concurrency`
is its ceiling), each started as soon as a slot is free and the rate brakes allow
(`delivery_control`). A request that failed and may be retried leaves its slot at once
and waits in a schedule ordered by due time; due retries go before new batches. What
is admitted but not yet answered for (in flight, waiting or queued) is bounded, so
`submit` blocks while it is full and memory stays flat however long the input.

An answered batch is handed to a recording thread, which runs `on_ack` / `on_fail` for
everything that came in meanwhile and then `flush` once (one durable checkpoint write
for many answers). A batch keeps its slot until it is recorded, so what can be sent
twice after a crash is at most the batches in flight: the in-flight limit.

`stop()` sends nothing more: queued and waiting batches are abandoned at once, requests
in flight get `grace` seconds to be answered and are then cancelled; whatever was not
answered stays unrecorded, for a resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cmdai_cli.commandai import Answer
from cmdai_cli.replay.batching import Batch
from cmdai_cli.replay.delivery_control import AdaptiveLimit, LearntRate, RateLimiter
from cmdai_cli.retry import RetryPolicy

__all__ = ["Counters", "Delivery", "RateLimiter"]


@dataclass
class Counters:
    """What the delivery did and is doing; read by the summary and the progress display."""

    sent: int = 0
    failed: int = 0
    unreachable: int = 0  # of `failed`: no answer, or a 5xx, at the last try
    retries: int = 0
    requests: int = 0
    abandoned: int = 0
    retry_wait: float = 0.0  # seconds of waiting scheduled for retries, summed
    in_flight: int = 0
    max_in_flight: int = 0
    limit: int = 0  # the in-flight limit now
    waiting: int = 0  # requests waiting for a retry now
    max_waiting: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


Send = Callable[[Batch], Awaitable[Answer]]
Acked = Callable[[Batch, Answer], None]
Failed = Callable[[Batch, str, int | None, int], None]


@dataclass(eq=False)
class _Job:
    batch: Batch
    attempts: int = 0
    waited: float = 0.0
    slot: bool = True  # holds an in-flight slot until recorded
    # What the recorder is to do: (answer) for an ack, (reason, status) for a failure.
    answer: Answer | None = None
    reason: str | None = None


class Delivery:
    """Sends batches through `send` (a coroutine function); see the module docstring."""

    def __init__(
        self,
        send: Send,
        *,
        on_ack: Acked,
        on_fail: Failed,
        policy: RetryPolicy,
        concurrency: int = 4,
        limiter: RateLimiter | None = None,
        backlog: int | None = None,
        flush: Callable[[], None] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
        start: int | None = None,
        grace: float = 0.5,
    ) -> None:
        self.send = send
        self.on_ack = on_ack
        self.on_fail = on_fail
        self.flush = flush
        self.close = close
        self.policy = policy
        self.limiter = limiter
        self.limit = AdaptiveLimit(concurrency, start=start)
        self.learnt = LearntRate()
        self.grace = grace
        self.counters = Counters(limit=self.limit.current)
        self.error: BaseException | None = None
        ceiling = self.limit.ceiling
        # Admitted and not yet recorded: in flight, waiting for a retry, or queued.
        self.capacity = ceiling + (backlog if backlog is not None else max(16, 2 * ceiling))
        self._room = threading.Semaphore(self.capacity)
        self._stopping = threading.Event()
        self._records: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._incoming: deque[_Job] = deque()
        self._schedule: list[tuple[float, int, _Job]] = []
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._input_closed = False
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="cmdai-replay-send", daemon=True)
        self._recorder = threading.Thread(
            target=self._record_loop, name="cmdai-replay-record", daemon=True
        )
        self._thread.start()
        self._recorder.start()
        self._ready.wait()

    # ------------------------------------------------------------------ the reader's side

    def submit(self, batch: Batch) -> None:
        """Hand over a batch, waiting while as many as allowed are not yet recorded."""
        job = _Job(batch)
        while not self._room.acquire(timeout=0.1):
            self.raise_error()
            if self._stopping.is_set():
                self._abandon(job)
                return
        self.raise_error()
        if self._stopping.is_set():
            self._room.release()
            self._abandon(job)
            return
        if not batch.events:
            # Nothing to send (its range held only skipped or rejected records).
            job.slot = False
            job.answer = Answer(True, None)
            self._records.put(job)
            return
        self._call(self._admit, job)

    def finish(self) -> None:
        """Wait until every batch is answered for (or abandoned, when stopping)."""
        self._call(self._close_input)
        while self._thread.is_alive():
            self._thread.join(timeout=0.2)
        self._records.put(None)
        while self._recorder.is_alive():
            self._recorder.join(timeout=0.2)

    def stop(self) -> None:
        """Send nothing more; requests in flight have `grace` seconds to be answered."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._call(self._on_stop)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        # A loop that has ended has nothing left to do.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def _abandon(self, job: _Job) -> None:
        with self.counters.lock:
            self.counters.abandoned += len(job.batch)

    # ------------------------------------------------------------------ the loop

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready.set()
        try:
            await self._dispatch()
        except BaseException as exc:  # a bug: stop everything, say why
            self._fail(exc)
        # Stopping or done: what is in flight ends (answered, or cancelled after the
        # grace), and every slot comes back from the recorder.
        while self.counters.in_flight > 0:
            await self._nap(None)
        if self.close is not None:
            # A client that cannot close cleanly has nothing more to send anyway.
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(self.close(), timeout=max(self.grace, 0.1))

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._stopping.set()
        if self._loop is not None:
            self._call(self._on_stop)

    async def _nap(self, timeout: float | None) -> None:
        """Sleep until something changes, or `timeout` seconds pass."""
        wake = self._wake
        assert wake is not None and self._loop is not None
        if timeout is None:
            await wake.wait()
        else:
            handle = self._loop.call_later(max(0.0, timeout), wake.set)
            try:
                await wake.wait()
            finally:
                handle.cancel()
        wake.clear()

    def _poke(self) -> None:
        assert self._wake is not None
        self._wake.set()

    def _admit(self, job: _Job) -> None:
        if self._stopping.is_set():
            self._room.release()
            self._abandon(job)
            return
        self._incoming.append(job)
        self._poke()

    def _close_input(self) -> None:
        self._input_closed = True
        self._poke()

    def _on_stop(self) -> None:
        abandoned = list(self._incoming) + [job for _, _, job in self._schedule]
        self._incoming.clear()
        self._schedule.clear()
        for job in abandoned:
            self._room.release()
            self._abandon(job)
        self._set_waiting()
        assert self._loop is not None
        self._loop.call_later(self.grace, self._cancel_in_flight)
        self._poke()

    def _cancel_in_flight(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _set_waiting(self) -> None:
        c = self.counters
        c.waiting = len(self._schedule)
        c.max_waiting = max(c.max_waiting, c.waiting)

    async def _dispatch(self) -> None:
        counters = self.counters
        limit = self.limit
        clock = time.monotonic
        while not self._stopping.is_set():
            if counters.in_flight >= limit.current:
                await self._nap(None)
                continue
            job: _Job | None = None
            schedule = self._schedule
            if schedule and schedule[0][0] <= clock():
                job = heapq.heappop(schedule)[2]
                self._set_waiting()
            elif self._incoming:
                job = self._incoming.popleft()
            if job is None:
                if self._input_closed and not schedule and counters.in_flight == 0:
                    return
                await self._nap(schedule[0][0] - clock() if schedule else None)
                continue
            delay = self.learnt.delay()
            if self.limiter is not None:
                delay = max(delay, self.limiter.reserve(len(job.batch)))
            if delay > 0:
                until = clock() + delay
                while not self._stopping.is_set() and (left := until - clock()) > 0:
                    await self._nap(left)
                if self._stopping.is_set():
                    self._room.release()
                    self._abandon(job)
                    return
            counters.in_flight += 1
            if counters.in_flight > counters.max_in_flight:
                counters.max_in_flight = counters.in_flight
            task = asyncio.get_running_loop().create_task(self._attempt(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _attempt(self, job: _Job) -> None:
        counters = self.counters
        batch = job.batch
        try:
            answer = await self.send(batch)
        except asyncio.CancelledError:
            self._release(job, abandoned=True)
            return
        except BaseException as exc:
            self._release(job, abandoned=True)
            self._fail(exc)
            return
        job.attempts += 1
        counters.requests += 1
        status = answer.status
        self.learnt.answered(status)
        if answer.ok:
            self.limit.clean(counters.in_flight)
            self._record(job, answer=answer)
            return
        if status in (429, 503) or answer.timed_out:
            self.limit.overloaded()
        counters.limit = self.limit.current
        decision = self.policy.decide(
            job.attempts,
            job.waited,
            status=status,
            network_error=status is None,
            server_wait=answer.retry_after,
        )
        if not decision.retry:
            reason = answer.detail or f"HTTP {status}"
            if status is None or status in (408, 429) or status >= 500:
                reason += f" ({decision.reason})"
            job.reason = reason
            self._record(job, answer=answer)
            return
        if self._stopping.is_set():
            self._release(job, abandoned=True)
            return
        counters.retries += 1
        counters.retry_wait += decision.delay
        job.waited += decision.delay
        self._seq += 1
        heapq.heappush(self._schedule, (time.monotonic() + decision.delay, self._seq, job))
        self._set_waiting()
        self._release(job, abandoned=False)

    def _release(self, job: _Job, *, abandoned: bool) -> None:
        """Give back the job's slot (and, when abandoned, its room)."""
        counters = self.counters
        counters.in_flight -= 1
        counters.limit = self.limit.current
        if abandoned:
            self._room.release()
            self._abandon(job)
        self._poke()

    def _record(self, job: _Job, *, answer: Answer) -> None:
        job.answer = answer
        self.counters.limit = self.limit.current
        self._records.put(job)

    def _recorded(self, jobs: list[_Job]) -> None:
        for job in jobs:
            if job.slot:
                self.counters.in_flight -= 1
        self._poke()

    # ------------------------------------------------------------------ the recorder

    def _record_loop(self) -> None:
        records = self._records
        done = False
        while not done:
            first = records.get()
            if first is None:
                return
            jobs = [first]
            while True:  # everything answered meanwhile goes into one durable write
                try:
                    more = records.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                jobs.append(more)
            try:
                for job in jobs:
                    answer = job.answer
                    assert answer is not None
                    if job.reason is None:
                        self.on_ack(job.batch, answer)
                    else:
                        self.on_fail(job.batch, job.reason, answer.status, job.attempts)
                if self.flush is not None:
                    self.flush()
            except BaseException as exc:  # a full disk: stop everything
                self._fail(exc)
            for _ in jobs:
                self._room.release()
            if any(job.slot for job in jobs):
                self._call(self._recorded, jobs)
