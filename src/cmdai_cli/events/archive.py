"""The layout of Segment's S3 archive, and which of its day folders `--since` can skip.

Segment's AWS S3 destination writes gzip NDJSON to
`{bucket}[/{prefix}]/segment-logs/{source-id}/{received-day}/{file}.gz`, where
`received-day` is the UTC day the events were received, as Unix milliseconds
(segment-docs, connections/storage/catalog/aws-s3). An event's `timestamp` is never
later than its `receivedAt`, so a folder whose day ends at or before `--since` holds
nothing a `--since` filter would keep: it need not be listed, let alone read. The
other way round does not hold (events arrive late, so a later folder may hold events
from before `--until`): `--until` skips nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

__all__ = ["DAY_MS", "day_of", "skipped_by_since"]

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def day_of(name: str) -> datetime | None:
    """The UTC day a folder named as Segment names day folders starts at, else None.

    Segment's names are 13 digits (milliseconds from 2001 to 2286) at a UTC midnight;
    anything else is some other folder.
    """
    if len(name) != 13 or not name.isdigit():
        return None
    millis = int(name)
    if millis % DAY_MS:
        return None
    return _EPOCH + timedelta(milliseconds=millis)


def skipped_by_since(parts: Iterable[str], since: datetime) -> bool:
    """Whether a path (as its parts) lies in a day folder that ends at or before `since`."""
    for part in parts:
        day = day_of(part)
        if day is not None and day + timedelta(days=1) <= since:
            return True
    return False
