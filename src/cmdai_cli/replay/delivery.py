"""Sending batches so that waiting never holds up sending.

The reading thread hands batches to `Delivery.submit`. An event loop on a thread of its
own sends them: as many requests in flight as the adaptive limit allows (`--concurrency`
is its ceiling), each started as soon as a slot is free and the rate brakes allow
(`delivery_control`). A request that failed and may be retried leaves its slot at once
and waits in a schedule ordered by due time; due retries go before new batches. What
is admitted but not yet answered for (in flight, waiting or queued) is bounded, so
`submit` blocks while it is full and memory stays flat however long the input.

The server's word comes first: with its quota spent (`X-RateLimit-Remaining: 0`)
nothing goes before its reset, and when the first 429s teach a rate (`LearntRate`)
little goes before the wait the server asked for. A request answered 429 waits as
long as its own answer said (`Retry-After` or the reset), under the retry policy.

A request that has taken many times the usual latency stops counting against the limit
(`InFlight`), up to twice the ceiling's number of such stragglers: a few hung requests
cannot stall every slot (benchmarks/delivery.py, 2% of answers 2 s late: with only
the ceiling's number of stragglers allowed, the steady rate was a quarter lower).
Everything in flight is still bounded, by three times the ceiling.

An answered batch is handed to a recording thread, which runs `on_ack` / `on_fail` for
everything that came in meanwhile and then `flush` once (one durable checkpoint write
for many answers). A batch keeps its slot until it is recorded, so what can be sent
twice after a crash is at most the batches in flight.

A run of failures across the pool (no answer, a 5xx, or a wait asked for longer than
the policy's longest, with no other answer between:
`Breaker`) decides that the endpoint is down: the delivery stops as `stop()` does and
says why (`down`). A batch whose retries ran out on such a failure is held, not
recorded as failed, while the run lasts: an answer that ends the run records it as
failed, a trip leaves it pending, so that nothing of an endpoint that was down goes to
the dead letters.

A wait the server asks for (`Retry-After`, a 429's reset, a spent quota's reset) is
at most the policy's longest wait; `warn` is told once when one was cut.

`stop()` sends nothing more: queued and waiting batches are abandoned at once, requests
in flight get `grace` seconds to be answered and are then cancelled; whatever was not
answered stays unrecorded, for a resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from cmdai_cli.replay.batching import Batch
from cmdai_cli.replay.delivery_control import (
    AdaptiveLimit,
    Breaker,
    InFlight,
    LearntRate,
    Quota,
    RateLimiter,
)
from cmdai_cli.replay.delivery_record import Acked, Answer, Counters, Failed, Job, Recorder, Send
from cmdai_cli.retry import Decision, RetryPolicy

__all__ = ["Counters", "Delivery", "RateLimiter"]


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
        request_rate: float | None = None,
        backlog: int | None = None,
        flush: Callable[[], None] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
        start: int | None = None,
        grace: float = 0.5,
        breaker: Breaker | None = None,
        warn: Callable[[str], None] | None = None,
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
        # A target's ceiling in requests per second; bursts of a tenth of a second, so
        # that no second ever holds more than 1.1 times the rate.
        self.requests = RateLimiter(request_rate, burst=0.1) if request_rate else None
        self.quota = Quota(policy.max_delay)
        self.grace = grace
        self.breaker = breaker
        self.warn = warn
        self.down: str | None = None  # why the endpoint was taken for down
        self._capped = False  # whether a server's wait was cut (said once)
        self._held: list[Job] = []  # given up on a failure of the breaker's current run
        self.counters = Counters(limit=self.limit.current)
        self.error: BaseException | None = None
        ceiling = self.limit.ceiling
        # Admitted and not yet recorded: in flight (stragglers too), waiting for a retry,
        # or queued. At a 10% fault rate about as many wait as are in flight.
        self.capacity = 3 * ceiling + (backlog if backlog is not None else max(16, 4 * ceiling))
        self._room = threading.Semaphore(self.capacity)
        self._stopping = threading.Event()
        self._incoming: deque[Job] = deque()
        self._schedule: list[tuple[float, int, Job]] = []
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._input_closed = False
        self._flying: InFlight[Job] = InFlight(2 * ceiling)
        self._watching = False
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="cmdai-replay-send", daemon=True)
        self._recorder: Recorder[Job] = Recorder(self._record_jobs, self._after_record)
        self._thread.start()
        self._ready.wait()

    # ------------------------------------------------------------------ the reader's side

    def submit(self, batch: Batch) -> None:
        """Hand over a batch, waiting while as many as allowed are not yet recorded."""
        job = Job(batch)
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
            self._recorder.put(job)
            return
        self._call(self._admit, job)

    def finish(self) -> None:
        """Wait until every batch is answered for (or abandoned, when stopping)."""
        self._call(self._close_input)
        # Not Thread.join: a KeyboardInterrupt inside it can leave a thread that still
        # runs marked as ended (CPython bpo-45274); an Event is safe to wait on.
        while not self._ended.wait(0.2):
            pass
        self._recorder.close()

    def stop(self) -> None:
        """Send nothing more; requests in flight have `grace` seconds to be answered."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._call(self._on_stop)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if self._loop is None:
            return
        # A loop that has ended has nothing left to do.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def _abandon(self, job: Job) -> None:
        with self.counters.lock:
            self.counters.abandoned += len(job.batch)

    # ------------------------------------------------------------------ the loop

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # no loop at all: say why rather than hang
            self.error = self.error or exc
        finally:
            self._ended.set()
            self._ready.set()

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

    def _admit(self, job: Job) -> None:
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
        abandoned = list(self._incoming) + [job for _, _, job in self._schedule] + self._held
        self._incoming.clear()
        self._schedule.clear()
        self._held = []
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
            if self._flying.counted >= limit.current:
                await self._nap(None)
                continue
            job: Job | None = None
            schedule = self._schedule
            if schedule and schedule[0][0] <= clock():
                job = heapq.heappop(schedule)[2]
                self._set_waiting()
            elif self._incoming:
                job = self._incoming.popleft()
            if job is None:
                if self._held and not schedule and counters.in_flight == 0:
                    # Nothing in flight or waiting could end the breaker's run, and the
                    # reader may be waiting for the room the held batches take.
                    self._settle_held()
                    continue
                if self._input_closed and not schedule and counters.in_flight == 0:
                    return
                await self._nap(schedule[0][0] - clock() if schedule else None)
                continue
            delay = self.learnt.delay()
            if self.limiter is not None:
                delay = max(delay, self.limiter.reserve(len(job.batch)))
            if self.requests is not None:
                delay = max(delay, self.requests.reserve(1))
            while (delay := max(delay, self.quota.wait())) > 0:
                until = clock() + delay
                while not self._stopping.is_set() and (left := until - clock()) > 0:
                    await self._nap(left)
                if self._stopping.is_set():
                    self._room.release()
                    self._abandon(job)
                    return
                # An answer that came meanwhile may say the quota is spent.
                delay = 0.0
            self.quota.sent()
            job.sent_at = clock()
            self._flying.sent(job)
            counters.in_flight += 1
            if counters.in_flight > counters.max_in_flight:
                counters.max_in_flight = counters.in_flight
            if not self._watching:
                self._watching = True
                self._watch()
            task = asyncio.get_running_loop().create_task(self._attempt(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _attempt(self, job: Job) -> None:
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
        self._flying.answered(job, timed_out=answer.timed_out)
        status = answer.status
        if answer.reset is not None:
            reset = answer.reset
            if status == 429 or answer.remaining == 0:  # a wait asked for
                reset = self._cap(reset, "its rate limit's reset")
            if status == 429:
                self.quota.refused(reset)
            else:
                self.quota.answered(answer.remaining, reset, self._flying.unanswered)
        wait = asked = answer.retry_after
        if asked is not None:
            wait = self._cap(asked, "Retry-After")
        self.learnt.answered(status, job.sent_at, wait)
        # A sign of an endpoint that is down: no answer, a 5xx, or a wait asked for that
        # is longer than the policy waits (a service closed for longer than this run).
        down_sign = status is None or status >= 500 or (wait is not None and wait != asked)
        breaker = self.breaker
        # Nothing to do for an answer outside a run of failures: the usual case.
        if breaker is not None and (breaker.failures or down_sign):
            if breaker.answered(status, job.sent_at, answer.detail, failed=down_sign):
                self._trip(breaker.reason())
            elif self._held and not breaker.failures:
                self._settle_held()
        if answer.ok:
            self.limit.clean(self._flying.counted)
            self._record(job, answer=answer)
            return
        if self.down is not None and down_sign:
            # The endpoint was taken for down (on this answer or another): pending.
            self._release(job, abandoned=True)
            return
        # A 429 is about the rate: LearntRate answers it. The in-flight limit is for load.
        if status == 503 or answer.timed_out:
            self.limit.overloaded()
        counters.limit = self.limit.current
        decision = self.policy.decide(
            job.attempts,
            job.waited,
            status=status,
            network_error=status is None,
            server_wait=wait,
        )
        if not decision.retry:
            reason = answer.detail or f"HTTP {status}"
            if status is None or status in (408, 429) or status >= 500:
                reason += f" ({_reason_key(decision, self.policy)})"
            job.reason = reason
            if self._stopping.is_set() and down_sign:
                self._release(job, abandoned=True)
                return
            if breaker is not None and down_sign:
                # Failed or pending: the breaker's run decides (see the module docstring).
                job.answer = answer
                self._held.append(job)
                self._release(job, abandoned=False)
                return
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

    def _cap(self, wait: float, what: str) -> float:
        """A wait the server asked for, at most the policy's longest; said once when cut."""
        most = self.policy.max_delay
        if wait <= most:
            return wait
        if not self._capped:
            self._capped = True
            if self.warn is not None:
                self.warn(
                    f"the server asked to wait {wait:g} s ({what}); waiting {most:g} s at most"
                )
        return most

    def _trip(self, reason: str) -> None:
        """The endpoint is down: stop, leaving everything not answered pending."""
        if self.down is None and not self._stopping.is_set():
            self.down = reason
            self._stopping.set()
            self._on_stop()

    def _settle_held(self) -> None:
        """The breaker's run ended with an answer, or nothing more can come of it: its
        held batches failed, unless the run is long enough to call the endpoint down."""
        breaker = self.breaker
        if breaker is not None and breaker.failures and breaker.enough():
            self._trip(breaker.reason())
            return
        held, self._held = self._held, []
        for job in held:
            job.slot = False  # given back when it was held
            self._recorder.put(job)

    def _free(self, job: Job) -> None:
        self._flying.done(job)
        self.counters.in_flight -= 1

    def _watch(self) -> None:
        """Every tenth of a second while requests are in flight: mark the stragglers."""
        if not self._flying:
            self._watching = False
            return
        assert self._loop is not None
        self._loop.call_later(0.1, self._watch)
        if self._flying.mark_stragglers():
            self._poke()

    def _release(self, job: Job, *, abandoned: bool) -> None:
        """Give back the job's slot (and, when abandoned, its room)."""
        self._free(job)
        self.counters.limit = self.limit.current
        if abandoned:
            self._room.release()
            self._abandon(job)
        self._poke()

    def _record(self, job: Job, *, answer: Answer) -> None:
        job.answer = answer
        self.counters.limit = self.limit.current
        self._recorder.put(job)

    def _recorded(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.slot:
                self._free(job)
        self._poke()

    # ------------------------------------------------------------------ recording

    def _record_jobs(self, jobs: list[Job]) -> None:
        """On the recording thread: dead letters, checkpoint, then one durable write."""
        for job in jobs:
            answer = job.answer
            assert answer is not None
            if job.reason is None:
                self.on_ack(job.batch, answer)
            else:
                self.on_fail(job.batch, job.reason, answer.status, job.attempts)
        if self.flush is not None:
            self.flush()

    def _after_record(self, jobs: list[Job], error: BaseException | None) -> None:
        if error is not None:  # a full disk: stop everything
            self._fail(error)
        for _ in jobs:
            self._room.release()
        if any(job.slot for job in jobs):
            self._call(self._recorded, jobs)


def _reason_key(decision: Decision, policy: RetryPolicy) -> str:
    """Why retrying stopped, without the drawn wait: the reason is a key that counts
    events (`failed_reasons`), and a random number in it would split one cause in many."""
    if decision.delay > 0:
        # Only the wait limit gives up with a wait in hand (retry.RetryPolicy.decide).
        return f"the next wait would pass the limit of {policy.max_total_wait:g} s of waiting"
    return decision.reason
