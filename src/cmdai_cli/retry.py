"""The one retry policy of cmdai: which failures to retry, and how long to wait.

Pure: no I/O and no clock of its own. A caller asks `RetryPolicy.decide` after each failed
attempt and sleeps for the answer's delay (or gives up). Exponential backoff with full
jitter spreads retries from many clients; a server's own answer (`Retry-After`, a rate
limit reset) takes precedence over the backoff. Every loop is bounded twice: by a number
of retries and by a total time spent waiting.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

# 408 Request Timeout and 429 Too Many Requests are the only 4xx that a retry can cure.
RETRYABLE_4XX = frozenset({408, 429})
# Answers after which a server has most likely not acted on the request, so that even a
# request that is not idempotent (a POST that creates something) may be sent again.
NOT_PROCESSED = frozenset({408, 429, 502, 503, 504})


def is_retryable_status(status: int, *, idempotent: bool = True) -> bool:
    """Whether an HTTP answer with `status` is worth sending again."""
    if not idempotent:
        return status in NOT_PROCESSED
    return status in RETRYABLE_4XX or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP-date.

    None when the value is absent or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # NaN and infinity are not waits a server can mean.
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def parse_reset(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from an `X-RateLimit-Reset` value, whose unit servers disagree on.

    GitHub sends the Unix time of the reset in seconds (docs.github.com, "Rate limits for
    the REST API"), some services in milliseconds; Segment's Tracking API the seconds to
    wait (segment-docs `http-api/index.md`, "Rate limits"), as the IETF draft's
    `RateLimit-Reset` does (draft-ietf-httpapi-ratelimit-headers-06, delta-seconds). So
    the magnitude decides: a number of 10^9 or more is a Unix time (in milliseconds from
    10^12) and the wait is the time until then, since no server asks for a wait of 30
    years; a smaller one is already the seconds to wait. `now` is the current Unix time in
    seconds.
    """
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number < 0 or number == float("inf"):
        return None
    if number >= 1e12:
        return max(0.0, number / 1000.0 - now)
    if number >= 1e9:
        return max(0.0, number - now)
    return number


def parse_remaining(value: str | None) -> int | None:
    """Requests left in the server's current window, from `X-RateLimit-Remaining` (or the
    IETF draft's `RateLimit-Remaining`); None when absent or unreadable."""
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return max(0, number)


# The names a server's quota comes under: the common X- form (GitHub, Segment) and the
# IETF draft's (draft-ietf-httpapi-ratelimit-headers-06). Lower case, as h11 and httpx
# give header names.
REMAINING_HEADERS = ("x-ratelimit-remaining", "ratelimit-remaining")
RESET_HEADERS = ("x-ratelimit-reset", "ratelimit-reset")


def quota_hint(
    headers: Mapping[str, str], *, now: float, refused: bool = False
) -> tuple[int | None, float | None]:
    """(requests left, seconds until the window resets) from an answer's headers.

    The reset is read only beside a `Remaining`, or on a refusal (`refused`: a 429,
    where Segment sends it alone): it says nothing otherwise. `headers` must find lower
    case names. `now` is the current Unix time in seconds.
    """
    remaining = None
    for name in REMAINING_HEADERS:
        remaining = parse_remaining(headers.get(name))
        if remaining is not None:
            break
    if remaining is None and not refused:
        return None, None
    reset = None
    for name in RESET_HEADERS:
        reset = parse_reset(headers.get(name), now=now)
        if reset is not None:
            break
    return remaining, reset


@dataclass(frozen=True)
class Decision:
    """What to do after a failed attempt: retry after `delay` seconds, or give up."""

    retry: bool
    delay: float
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by retries and by total wait.

    Attempt numbers start at 1 (the first try). The n-th retry waits a random time up to
    `min(max_delay, base_delay * 2**(n-1))`, unless the server said how long to wait.
    """

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 120.0

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The jittered delay before retry number `retry_number` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, retry_number - 1)))
        return (rng or random).uniform(0.0, ceiling)

    def decide(
        self,
        attempt: int,
        waited: float,
        *,
        status: int | None = None,
        network_error: bool = False,
        idempotent: bool = True,
        server_wait: float | None = None,
        rng: random.Random | None = None,
    ) -> Decision:
        """After failed attempt number `attempt`, having already waited `waited` seconds.

        Give `status` for an HTTP answer, or `network_error=True` when none came (a
        connection that failed before the request was sent counts as idempotent: pass
        `idempotent=True` for it). `server_wait` is how long the server asked to wait.
        """
        if status is not None and not is_retryable_status(status, idempotent=idempotent):
            return Decision(False, 0.0, f"HTTP {status} is not retried")
        if status is None and not network_error:
            return Decision(False, 0.0, "nothing to retry")
        if network_error and not idempotent:
            return Decision(False, 0.0, "the request may have been processed")
        if attempt > self.max_retries:
            return Decision(
                False, 0.0, f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}"
            )
        # The server knows its own load better than any backoff guess.
        delay = max(0.0, server_wait) if server_wait is not None else self.backoff(attempt, rng)
        remaining = self.max_total_wait - waited
        if delay > remaining:
            return Decision(
                False,
                delay,
                f"the next wait ({delay:.1f} s) would pass the limit of "
                f"{self.max_total_wait:.0f} s of waiting",
            )
        return Decision(True, delay, "retrying")
