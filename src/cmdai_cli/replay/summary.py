"""What a replay came to, as data: the command renders it (text or JSON) and picks the exit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cmdai_cli.errors import CmdaiError
from cmdai_cli.events.inputs import ReadStats


@dataclass
class Summary:
    """What a replay came to. `read = sent + skipped + rejected + failed + pending`.

    Of the `failed`, `unreachable` are those whose last try got no answer or a 5xx; the
    rest were refused by the service (a 4xx, or 429 until the retries ran out). It is
    not in `as_dict`, whose keys are the command's JSON output.
    """

    target: str
    destination: str
    read: int = 0
    sent: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    elapsed: float = 0.0
    requests: int = 0
    pending: int = 0
    filtered: int = 0
    already_done: int = 0
    ignored: int = 0
    failed_before: int = 0
    rejected_before: int = 0
    dry_run: bool = False
    # This run's share (`K/N`) and whether it was split by file or by messageId; what
    # reading its inputs cost, counted as they are read.
    shard: str | None = None
    shard_by: str | None = None
    reading: ReadStats = field(default_factory=ReadStats)
    would_send: int = 0
    interrupted: bool = False
    checkpoint: str | None = None
    rejects: str | None = None
    dead_letter: str | None = None
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    failed_reasons: dict[str, int] = field(default_factory=dict)
    stopped_by: CmdaiError | None = None
    unreachable: int = 0
    max_in_flight: int = 0
    retry_wait: float = 0.0  # seconds of retry waits scheduled, summed over requests

    @property
    def undelivered(self) -> int:
        """Events meant to go that did not, in this run or (resumed) earlier ones."""
        return (
            self.rejected + self.failed + self.pending + self.failed_before + self.rejected_before
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "sent": self.sent,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "failed": self.failed,
            "retries": self.retries,
            "elapsed": round(self.elapsed, 3),
            "target": self.target,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "would_send": self.would_send,
            "requests": self.requests,
            "files_read": self.reading.files,
            "bytes_read": self.reading.bytes,
            "shard": self.shard,
            "shard_by": self.shard_by,
            "pending": self.pending,
            "filtered": self.filtered,
            "already_done": self.already_done,
            "ignored": self.ignored,
            "failed_before": self.failed_before,
            "rejected_before": self.rejected_before,
            "interrupted": self.interrupted,
            "checkpoint": self.checkpoint,
            "rejects": self.rejects,
            "dead_letter": self.dead_letter,
            "rejected_reasons": self.rejected_reasons,
            "failed_reasons": self.failed_reasons,
            "error": self.stopped_by.message if self.stopped_by is not None else None,
            "max_in_flight": self.max_in_flight,
            "retry_wait_s": round(self.retry_wait, 3),
        }


@dataclass
class Progress:
    """A snapshot for a progress display; `total` is an estimate of records, or None.

    `done` counts the records read that are accounted for (sent, skipped, rejected or
    failed); `in_flight`, `limit` and `waiting` are the requests in flight, the in-flight
    limit and the requests waiting for a retry, now.
    """

    read: int
    sent: int
    failed: int
    rejected: int
    retries: int
    total: int | None
    done: int = 0
    in_flight: int = 0
    limit: int = 0
    waiting: int = 0
