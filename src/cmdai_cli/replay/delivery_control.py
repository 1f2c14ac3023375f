"""How fast a replay may send: the in-flight limit, the user's rate, a learnt rate, and
the server's own word on its quota.

Four independent brakes, each asked before a request goes out (and `InFlight`, which
counts what is in flight against the limit):

- `AdaptiveLimit`: how many requests may be in flight. Additive increase while answers
  come back clean, multiplicative decrease on a sign of overload (a 503, a time-out),
  as TCP's congestion window does; the rule is the one of Netflix's concurrency-limits
  library (`AIMDLimit`: +1 per clean answer while the limit is in use, x0.9 per drop),
  so that rare faults cost little and a server that keeps refusing gets fewer requests.
  A 429 is about the rate, not the load, and goes to `LearntRate` alone.
- `RateLimiter`: `--rate`, events per second, a token bucket; and a target's own
  ceiling in requests per second (Segment's).
- `LearntRate`: requests per second, set when a noticeable share of answers are 429.
  Over a low-latency link even one request in flight can outrun a server's rate limit,
  so a limit on concurrency alone cannot stop the 429s; see the class for how the rate
  is found without growing into the limit again.
- `Quota`: what the server says is left (`X-RateLimit-Remaining`) and when it comes
  back (`-Reset`): with nothing left, nothing is sent until the reset, so the wall is
  not met at all (GitHub's documented rule: "If x-ratelimit-remaining is 0, you should
  not make another request until after the time specified by x-ratelimit-reset",
  docs.github.com, "Rate limits for the REST API").

And `Breaker`, which decides that the endpoint is down, so that a replay stops rather
than crawls through timeouts.

Each is pure apart from the clock it is given, and used from one thread (the delivery
loop's), except `RateLimiter`, which keeps its lock for callers on other threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)


class RateLimiter:
    """At most `rate` events per second on average, with bursts of up to `burst` seconds'
    worth (one by default).

    A caller reserves its events and then sleeps off any debt outside the lock, so
    callers are served in the order they asked.
    """

    def __init__(
        self, rate: float, *, burst: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(rate * burst, 1.0)
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


class AdaptiveLimit:
    """The number of requests allowed in flight, between 1 and `ceiling`.

    It grows by one per clean answer, but at most doubles every `DOUBLE_EVERY` seconds:
    over a link of a millisecond, a server's burst of clean answers (a token bucket
    holding a second's worth) would otherwise carry the limit to the ceiling within
    that burst, and every request then in flight meets the wall that follows (at
    100/s, a hundred 429s before the first of them could slow anything). A remote
    server's answers take longer than that anyway.
    """

    START = 8
    BACKOFF = 0.9
    DOUBLE_EVERY = 0.1

    def __init__(
        self,
        ceiling: int,
        *,
        start: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.value = float(min(self.ceiling, start or self.START))
        self.cuts = 0
        self.clock = clock
        self._mark = self.value  # the value DOUBLE_EVERY ago, or less
        self._marked = clock()

    @property
    def current(self) -> int:
        return max(1, int(self.value))

    def clean(self, in_flight: int) -> None:
        """A 2xx came back; `in_flight` counts the request that got it."""
        # Raising a limit that is not in use would let it grow past what was ever tried.
        if in_flight * 2 < self.value:
            return
        if self.value >= 2 * self._mark:
            now = self.clock()
            if now - self._marked < self.DOUBLE_EVERY:
                return
            self._mark, self._marked = self.value, now
        self.value = min(float(self.ceiling), self.value + 1.0)

    def overloaded(self) -> None:
        """A 503 or a time-out."""
        self.value = max(1.0, self.value * self.BACKOFF)
        self._mark = min(self._mark, self.value)
        self.cuts += 1


class LearntRate:
    """A requests-per-second cap that exists only once the server has said 429 enough.

    A cut needs a 429 while at least `MIN_429` answers of 429 make more than `SHARE` of
    at least `MIN_ANSWERS` answers of the last `WINDOW` seconds, so that the odd 429 of a
    busy server (or of a fault) leaves the rate alone; cuts are `CUT_EVERY` seconds
    apart at least, and never raise the cap.

    What the server accepted tells its rate, but not at once: a token bucket lets a
    burst through before it refuses anything, and a rate measured over the burst takes
    it for the server's rate (with a bucket of a whole second's worth at 200/s, the cap
    came out at ten times the limit, and 17% of requests were refused). So:

    - the first cut sets the cap to `FACTOR` times what was accepted over the last
      `WINDOW` (a second, however long the run has been going): no more than the
      server's burst plus its refill. When the server asked for a wait, only one request
      goes every `TRY_EVERY` seconds until then: one that gets through shows a server
      that refills as it goes (a token bucket), and the wait ends there, while a spent
      window refuses them until its reset, and its quota sets the cap;
    - the first cap is too low after a short burst (a tenth of the rate for a bucket of
      a tenth of a second), so it then grows fast (`FIND` per second, compounded) until a
      429. That 429 stops the growth for `SHORT` seconds, and the cap becomes `FACTOR`
      times what got through meanwhile (a bucket's refill, whatever burst it had saved),
      or, when nothing did for `SETTLE` seconds, what got through over the last
      `WINDOW`: a spent window (which passes for a bucket when it resets just before
      the first try), waited out as above;
    - later cuts set the cap to `FACTOR` times what was accepted over the last `WINDOW`,
      and from `HOLD` seconds after a cut the cap grows slowly (`PROBE` per second,
      compounded), so that a server whose limit rose is found again, while a burst's
      clean answers cannot carry the rate into the wall: it is the rate, not the
      answers, that grows.
    """

    WINDOW = 1.0
    SHORT = 0.25
    SETTLE = 0.05
    SHARE = 0.05
    MIN_429 = 3
    MIN_ANSWERS = 20
    FACTOR = 0.9
    CUT_EVERY = 0.25
    TRY_EVERY = 0.1
    FIND = 4.0
    PROBE = 1.05
    HOLD = 1.0

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rate: float | None = None
        self.cuts = 0
        self.finding = False  # from the first cut until the growth meets the limit
        self._answers: deque[tuple[float, int]] = deque()  # (time, 0 ok / 1 429 / 2 other)
        self._oks = 0
        self._limited = 0
        self._last_cut = float("-inf")
        self._base = 0.0
        self._next = 0.0
        self._waiting: float | None = None  # until when the server asked to wait
        self._held = 0.0  # how long that wait was
        self._tried = False  # whether a try during the wait was answered
        self._peak = 0  # the most answers accepted within a WINDOW, during the wait
        self._growing = 0.0  # when the growth (of the search, or after a cut) starts
        self._met: float | None = None  # when the search met the limit
        self._frozen: float | None = None  # the cap it had then

    def answered(
        self, status: int | None, sent: float | None = None, wait: float | None = None
    ) -> bool:
        """Count an answer (to a request `sent` then, asking for a `wait` in seconds);
        whether it cut the rate."""
        now = self.clock()
        kind = 0 if status is not None and 200 <= status < 300 else 1 if status == 429 else 2
        answers = self._answers
        answers.append((now, kind))
        self._oks += kind == 0
        self._limited += kind == 1
        horizon = now - self.WINDOW
        while answers and answers[0][0] < horizon:
            _, old = answers.popleft()
            self._oks -= old == 0
            self._limited -= old == 1
        if self._waiting is not None:
            # Answers to what was in flight at the cut still come in: the quota's whole.
            self._peak = max(self._peak, self._oks)
            if sent is not None and self._last_cut < sent < self._waiting:  # a try
                if not self._tried and kind == 1:
                    # Refused at once: a window spent until its reset, whose quota the
                    # first cut measured; no search, only the slow growth after it.
                    self.finding = False
                self._tried = True
                if kind == 0:
                    self._end_wait(now)
            elif now >= self._waiting:
                self._end_wait(now)
            return False
        if kind != 1 or now - self._last_cut < self.CUT_EVERY:
            return False
        if self.finding:
            if now - self._growing < self.CUT_EVERY:
                return False
            if self._met is None:
                self._met = now
                self._frozen = self.current(now)
                return False
            since = self._accepted_since(self._met, now)
            # What got through since: a bucket's refill, whatever burst it had saved. If
            # nothing does (for SETTLE seconds already), a window is spent until its
            # reset, and its quota is what got through in the last second.
            if now - self._met < (self.SETTLE if not since else self.SHORT):
                return False
            accepted = since or self._oks / self.WINDOW
            spent = not since
        elif (
            self._limited >= self.MIN_429
            and len(answers) >= self.MIN_ANSWERS
            and self._limited > self.SHARE * len(answers)
        ):
            accepted = self._oks / self.WINDOW
            spent = self.cuts == 0
        else:
            return False
        current = self.current(now)
        cap = self.FACTOR * accepted
        self.rate = max(1.0, cap if current is None else min(current, cap))
        self.finding = self.cuts == 0
        self._met = self._frozen = None
        self._base = self.rate
        self._last_cut = self._growing = now
        self.cuts += 1
        if spent and wait is not None:
            # The first 429s, or a search that met a spent window: the server's wait is
            # what there is to go by.
            self.hold(now + wait)
        return True

    def hold(self, until: float) -> None:
        """The server asked for a wait until `until`, as the first cut was made."""
        now = self.clock()
        if until > now:
            self._waiting = until
            self._held = until - now
            self._tried = False
            # The first try after a pause long enough for a bucket to refill some.
            self._next = max(self._next, now + self.TRY_EVERY)

    def _end_wait(self, now: float) -> None:
        self._waiting = None
        if not self._tried and self._held >= self.TRY_EVERY:
            # No try was answered before the wait ended (one after it cannot tell a
            # refill from a window's reset): the first cut's measure is all there is.
            # A wait shorter than one try is a bucket's refill, not a spent window's
            # reset: the search goes on, or a 100/s limit would be crept up to at 5%
            # a second from the burst's first measure.
            self.finding = False
        if self.finding:
            self._growing = now
        else:
            # A window: its quota is what got through in a second, answers that were
            # still on their way at the cut included.
            self.rate = self._base = max(self._base, self.FACTOR * self._peak / self.WINDOW)
            self._last_cut = now

    def _accepted_since(self, since: float, now: float) -> float:
        oks = 0
        for at, kind in reversed(self._answers):
            if at < since:
                break
            oks += kind == 0
        return oks / max(now - since, 1e-3)

    def current(self, now: float | None = None) -> float | None:
        if self.rate is None:
            return None
        now = self.clock() if now is None else now
        if self._waiting is not None:
            if now < self._waiting:
                return 1.0 / self.TRY_EVERY
            self._end_wait(now)
        if self._frozen is not None:
            return self._frozen
        if self.finding:
            return float(self._base * self.FIND ** max(0.0, now - self._growing))
        grown = now - self._last_cut - self.HOLD
        if grown > 0:
            return float(self._base * self.PROBE**grown)
        return self.rate

    def delay(self) -> float:
        """Reserve the next request's turn; the seconds to wait for it."""
        now = self.clock()
        rate = self.current(now)
        if rate is None:
            return 0.0
        at = max(self._next, now)
        self._next = at + 1.0 / rate
        return at - now


class Quota:
    """What the server last said of its quota: how many requests are left in its window
    and when the window resets. With none left, nothing goes before the reset.

    What is in flight when an answer says `remaining` may or may not have been counted
    in it; counting it as spent errs on the side of fewer 429s. The wait is at most
    `most` seconds: a window of an hour (GitHub's) must not hold a replay for an hour on
    one answer; a request sent after that wait and refused again waits as its answer
    says, under the retry policy's own bound on waiting.
    """

    def __init__(self, most: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.most = most
        self.clock = clock
        self.left: int | None = None  # requests that may go before the reset
        self.reset_at = 0.0
        self.holds = 0  # how often nothing was left

    def answered(self, remaining: int | None, reset: float | None, in_flight: int) -> None:
        """An answer said `remaining` (None: nothing) and `reset` (seconds from now)."""
        if remaining is None or reset is None:
            return
        self.left = remaining - in_flight
        self.reset_at = self.clock() + min(max(0.0, reset), self.most)
        if self.left <= 0:
            self.holds += 1

    def refused(self, reset: float) -> None:
        """A 429 that said when the window resets: nothing is left until then."""
        self.answered(0, reset, 0)

    def wait(self) -> float:
        """Seconds before the next request may go (0: now)."""
        if self.left is None or self.left > 0:
            return 0.0
        left = self.reset_at - self.clock()
        if left <= 0:
            self.left = None  # a new window: unknown until an answer says
            return 0.0
        return left

    def sent(self) -> None:
        if self.left is not None:
            self.left -= 1


class InFlight(Generic[Key]):
    """The requests in flight: which count against the limit, and which are stragglers.

    A request that has taken `FACTOR` times the moving average of answer times (at
    least `MINIMUM` seconds; a second before any answer came) becomes a straggler and
    stops counting, up to `most` of them, so that a few hung requests cannot hold every
    slot; in flight at most is then the limit plus `most`.
    """

    FACTOR = 8.0
    MINIMUM = 0.25

    def __init__(self, most: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.most = most
        self.clock = clock
        self.counted = 0
        self.stragglers: set[Key] = set()
        self.latency: float | None = None  # a moving average of answer times
        self._sent: dict[Key, float] = {}  # in flight, oldest first: when sent

    @property
    def total(self) -> int:
        return self.counted + len(self.stragglers)

    @property
    def unanswered(self) -> int:
        return len(self._sent)

    def sent(self, key: Key) -> None:
        self.counted += 1
        self._sent[key] = self.clock()

    def answered(self, key: Key, *, timed_out: bool = False) -> None:
        """The answer came (it may still hold its slot until it is recorded)."""
        at = self._sent.pop(key, None)
        if at is not None and not timed_out:
            took = self.clock() - at
            self.latency = took if self.latency is None else 0.9 * self.latency + 0.1 * took

    def done(self, key: Key) -> None:
        """Its slot is free."""
        self._sent.pop(key, None)
        if key in self.stragglers:
            self.stragglers.discard(key)
        else:
            self.counted -= 1

    def mark_stragglers(self) -> bool:
        """Whether any request became a straggler (so freed a slot)."""
        # Before any answer there is no usual: a second is long for one request.
        usual = self.latency if self.latency is not None else 4 * self.MINIMUM / self.FACTOR
        late = self.clock() - max(self.MINIMUM, self.FACTOR * usual)
        freed = False
        for key, at in self._sent.items():
            if at >= late or len(self.stragglers) >= self.most:
                break
            if key not in self.stragglers:
                self.stragglers.add(key)
                self.counted -= 1
                freed = True
        return freed

    def __bool__(self) -> bool:
        return bool(self._sent)


class Breaker:
    """Whether the endpoint is down: a run of failures across the pool, no answer between.

    A request that got no answer (timed out, refused, reset) counts; a 5xx counts too,
    but a run of 5xx alone must be four times as long, since a server that answers is
    up, and a 5xx is as often one bad moment of a live service as a dead one behind a
    proxy. So does a 429 asking for a wait longer than the retry policy waits (a
    service closed for longer than the run). Any other answer (a 2xx, a 4xx, a 429
    asking for a wait the policy takes) ends the run: the endpoint is there.

    It trips when the run holds `SILENT` failures without an answer (or `FAILURES` in
    all) and reaches back `span` seconds, from the sending of its first request to now.
    Eight is twice the usual in-flight start and more than a burst of resets from one
    restarting server; the span is twice the time-out (at most `LONGEST`), so that the
    first wave of time-outs (everything in flight, sent together, times out together)
    cannot trip it alone: the retries of a second wave must have met silence too. A
    blip shorter than a time-out ends with an answer and trips nothing.

    `decided()` trips on the count alone: for when nothing else is going on that could
    tell more (the input ended, or every admitted batch has given up).
    """

    SILENT = 8
    FAILURES = 32
    LONGEST = 30.0

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.span = min(2.0 * timeout, self.LONGEST)
        self.clock = clock
        self.silent = 0  # failures without an answer, in the current run
        self.failures = 0  # the same, and 5xx answers
        self.since: float | None = None  # when the run's earliest request was sent
        self.last = ""  # what the run's latest failure was

    def answered(
        self,
        status: int | None,
        sent: float,
        detail: str | None = None,
        *,
        failed: bool | None = None,
    ) -> bool:
        """An answer (`status` None: none came) to a request sent at `sent`; whether the
        endpoint is now taken for down. `failed` says whether the answer is a sign of an
        endpoint that is down (by default: none came, or a 5xx); one that is, but came,
        counts as a 5xx does."""
        if failed is None:
            failed = status is None or status >= 500
        if not failed:
            self.silent = self.failures = 0
            self.since = None
            return False
        self.failures += 1
        self.silent += status is None
        self.since = sent if self.since is None else min(self.since, sent)
        self.last = detail or f"HTTP {status}"
        return self.enough() and self.clock() - self.since >= self.span

    def enough(self) -> bool:
        return self.silent >= self.SILENT or self.failures >= self.FAILURES

    def reason(self) -> str:
        """Why the endpoint was taken for down, in a line."""
        span = self.clock() - (self.since if self.since is not None else self.clock())
        return (
            f"the endpoint looks down: {self.failures} requests in a row failed "
            f"({self.silent} without an answer) over {span:.1f} s, the last with: {self.last}"
        )
