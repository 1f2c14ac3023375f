"""What `cmdai replay` was asked to do, and the checks on it that need no settings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cmdai_cli.errors import UsageError
from cmdai_cli.events.records import DEFAULT_MAX_RECORD_BYTES
from cmdai_cli.replay.select import Filters, Shard
from cmdai_cli.segment.messages import MAX_BATCH_MESSAGES

TargetName = Literal["segment", "webhook", "bulk-identify"]

# Requests in flight at most, by default. Command AI's endpoints take one small request
# per event (or per 100 users): with answers 50 ms away, 1,000 events/s needs 50 in
# flight, and slow answers hold slots for as long as they take (benchmarks/delivery.py:
# 128 kept 10% faults above half the clean rate, 96 did not). The adaptive limit stays
# below the ceiling unless answers stay clean. Segment batches are up to 500 KB and
# encoding them, not waiting, is what limits.
DEFAULT_CONCURRENCY = 128
SEGMENT_CONCURRENCY = 4


@dataclass(frozen=True)
class EventSource:
    """Events made in memory (`cmdai trigger`'s), replayed in place of input files.

    `name` stands for the input in the checkpoint and the error files; each event is
    taken once, in order, as a file's line would be.
    """

    name: str
    events: Iterable[dict[str, Any]] = field(repr=False)
    total: int | None = None  # how many, when known: the progress bar's ETA


@dataclass
class ReplayOptions:
    """Everything `cmdai replay` was asked to do; defaults are the command's."""

    inputs: Sequence[str]
    to: TargetName
    host: str | None = None
    url: str | None = None
    mapping_file: Path | None = None
    filters: Filters = field(default_factory=Filters)
    shard: Shard | None = None
    limit: int | None = None
    on_error: Literal["fail", "skip"] = "fail"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    batch_size: int | None = None
    concurrency: int | None = None  # the in-flight ceiling; None: the target's default
    rate: float | None = None
    max_retries: int = 5
    max_wait: float = 120.0
    backoff: float = 0.5
    timeout: float = 15.0
    gzip: bool = False
    checkpoint: Path | None = None
    resume: bool = False
    dead_letter: Path | None = None
    rejects: Path | None = None
    dry_run: bool = False
    source: EventSource | None = None  # events from memory instead of `inputs`

    @property
    def ceiling(self) -> int:
        """Most requests in flight at once: --concurrency, else the target's default."""
        if self.concurrency is not None:
            return self.concurrency
        return SEGMENT_CONCURRENCY if self.to == "segment" else DEFAULT_CONCURRENCY

    def check(self) -> None:
        if self.source is not None and (self.inputs or self.resume):
            raise UsageError("events from memory take no input files and cannot be resumed")
        for flag, number in (
            ("--rate", self.rate),
            ("--max-wait", self.max_wait),
            ("--backoff", self.backoff),
            ("--timeout", self.timeout),
        ):
            # float("nan") and float("inf") parse as numbers, but are none a wait can be.
            if number is not None and not math.isfinite(number):
                raise UsageError(f"{flag} must be a finite number, not {number}")
        if self.concurrency is not None and self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise UsageError("--rate must be a positive number of events per second")
        if self.limit is not None and self.limit < 0:
            raise UsageError("--limit must not be negative")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if (
            self.to == "segment"
            and self.batch_size is not None
            and self.batch_size > MAX_BATCH_MESSAGES
        ):
            raise UsageError(f"--batch-size for Segment is at most {MAX_BATCH_MESSAGES} messages")
        if self.max_retries < 0 or self.max_wait < 0 or self.backoff < 0 or self.timeout <= 0:
            raise UsageError("--max-retries, --max-wait and --backoff must not be negative")
