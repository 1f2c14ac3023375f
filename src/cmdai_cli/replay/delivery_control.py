"""How fast a replay may send: the in-flight limit, the user's rate, and a learnt rate.

Three independent brakes, each asked before a request goes out (and `InFlight`, which
counts what is in flight against the limit):

- `AdaptiveLimit`: how many requests may be in flight. Additive increase while answers
  come back clean, multiplicative decrease on a sign of overload (429, 503, a time-out),
  as TCP's congestion window does; the rule is the one of Netflix's concurrency-limits
  library (`AIMDLimit`: +1 per clean answer while the limit is in use, x0.9 per drop),
  so that rare faults cost little and a server that keeps refusing gets fewer requests.
- `RateLimiter`: `--rate`, events per second, a token bucket.
- `LearntRate`: requests per second, set when a noticeable share of answers are 429.
  Over a low-latency link even one request in flight can outrun a server's rate limit,
  so a limit on concurrency alone cannot stop the 429s; the rate is cut to just under
  what the server accepted over the last second, then raised until 429s return.

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


class AdaptiveLimit:
    """The number of requests allowed in flight, between 1 and `ceiling`."""

    START = 8
    BACKOFF = 0.9

    def __init__(self, ceiling: int, *, start: int | None = None) -> None:
        self.ceiling = max(1, ceiling)
        self.value = float(min(self.ceiling, start or self.START))
        self.cuts = 0

    @property
    def current(self) -> int:
        return max(1, int(self.value))

    def clean(self, in_flight: int) -> None:
        """A 2xx came back; `in_flight` counts the request that got it."""
        # Raising a limit that is not in use would let it grow past what was ever tried.
        if in_flight * 2 >= self.value:
            self.value = min(float(self.ceiling), self.value + 1.0)

    def overloaded(self) -> None:
        """A 429, a 503 or a time-out."""
        self.value = max(1.0, self.value * self.BACKOFF)
        self.cuts += 1


class LearntRate:
    """A requests-per-second cap that exists only once the server has said 429 enough.

    A cut needs a 429 while at least `MIN_429` answers of 429 make more than `SHARE` of
    at least `MIN_ANSWERS` answers of the last `WINDOW` seconds, so that the odd 429 of
    a busy server (or of a fault) leaves the rate alone. It sets the cap to `FACTOR`
    times the rate of 2xx answers over that window (never above the cap it had), at most
    once every `CUT_EVERY` seconds. From a second after a cut the cap grows by `GROWTH`
    per second, compounded, so that it finds its way back from a deep cut in seconds.
    """

    WINDOW = 1.0
    SHARE = 0.05
    MIN_429 = 3
    MIN_ANSWERS = 20
    FACTOR = 0.9
    CUT_EVERY = 0.25
    GROWTH = 1.2

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rate: float | None = None
        self.cuts = 0
        self._answers: deque[tuple[float, int]] = deque()  # (time, 0 ok / 1 429 / 2 other)
        self._oks = 0
        self._limited = 0
        self._last_cut = float("-inf")
        self._base = 0.0
        self._next = 0.0

    def answered(self, status: int | None) -> None:
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
        if (
            kind == 1
            and self._limited >= self.MIN_429
            and len(answers) >= self.MIN_ANSWERS
            and self._limited > self.SHARE * len(answers)
            and now - self._last_cut >= self.CUT_EVERY
        ):
            span = max(now - answers[0][0], 0.05)
            accepted = self.FACTOR * self._oks / span
            current = self.current(now)
            self.rate = max(1.0, accepted if current is None else min(current, accepted))
            self._base = self.rate
            self._last_cut = now
            self.cuts += 1

    def current(self, now: float | None = None) -> float | None:
        if self.rate is None:
            return None
        now = self.clock() if now is None else now
        grown = now - self._last_cut - 1.0
        if grown > 0:
            return float(self._base * self.GROWTH**grown)
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
