"""The window a status covers: a duration back from now, cut into buckets of one size.

Delivery Overview limits each granularity (public-api-sdk-python, docs/DeliveryOverviewApi.md,
`granularity`): MINUTE covers at most 4 hours starting at most 48 hours ago, HOUR at most
14 days starting at most 30 days ago, DAY at most 30 days starting at most 30 days ago.
The event volume endpoint takes the same three sizes, so one window serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cmdai_cli.errors import UsageError

GRANULARITIES = ("minute", "hour", "day")
AUTO = "auto"
STEPS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
# granularity -> (longest window, oldest start), from the Delivery Overview docs above.
LIMITS = {
    "minute": (timedelta(hours=4), timedelta(hours=48)),
    "hour": (timedelta(days=14), timedelta(days=30)),
    "day": (timedelta(days=30), timedelta(days=30)),
}
# Segment suggests ending a volume query about a minute behind the clock: the last minute
# is still being counted (docs.segmentapis.com, Events: `endTime`).
LAG = timedelta(minutes=1)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str, *, what: str = "--since") -> timedelta:
    """`90m`, `24h`, `7d`, `1h30m` (units s, m, h, d, w) as a timedelta."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _PART.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise UsageError(
            f"{what} {text!r} is not a duration: give a number and a unit (s, m, h, d, w), "
            "such as 90m, 24h or 7d"
        )
    seconds = sum(int(number) * UNITS[unit] for number, unit in parts)
    if seconds < 60:
        raise UsageError(f"{what} {text!r} is shorter than a minute, the finest bucket")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Window:
    """From `start` (inclusive) to `end` (exclusive), in buckets of `granularity`."""

    start: datetime
    end: datetime
    granularity: str

    @property
    def step(self) -> timedelta:
        return STEPS[self.granularity]

    @property
    def api_granularity(self) -> str:
        return self.granularity.upper()

    def buckets(self) -> list[datetime]:
        """The start of every bucket in the window."""
        times, moment = [], self.start
        while moment < self.end:
            times.append(moment)
            moment += self.step
        return times

    def as_json(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end), "granularity": self.granularity}


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fits(granularity: str, start: datetime, end: datetime, now: datetime) -> bool:
    longest, oldest = LIMITS[granularity]
    return end - start <= longest and now - start <= oldest


def window_for(since: timedelta, granularity: str, now: datetime) -> Window:
    """The window of `since` ending a minute ago; `auto` picks the finest size that fits.

    A window that no size (or not the size asked for) can cover is a UsageError, raised
    before anything is asked of Segment.
    """
    end = (now - LAG).replace(second=0, microsecond=0)
    start = end - since
    if granularity == AUTO:
        for name in GRANULARITIES:
            if fits(name, start, end, now):
                return Window(start, end, name)
        raise UsageError(
            f"a window of {describe(since)} fits no granularity: Segment keeps minutes for "
            "4 hours within the last 48, hours for 14 days and days for 30 days within "
            "the last 30",
            hint="give a shorter --since",
        )
    if granularity not in LIMITS:
        raise UsageError(
            f"--granularity {granularity!r} is not one of: auto, {', '.join(GRANULARITIES)}"
        )
    if not fits(granularity, start, end, now):
        longest, oldest = LIMITS[granularity]
        raise UsageError(
            f"a window of {describe(since)} does not fit --granularity {granularity}: "
            f"at most {describe(longest)}, starting at most {describe(oldest)} ago",
            hint="give a shorter --since or --granularity auto",
        )
    return Window(start, end, granularity)


def describe(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"
