"""What a replay came to, as data (`cmdai_cli.results.Result`): its `--json` document,
its exit code and the line that says why; the command renders the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cmdai_cli.errors import CmdaiError, ExitCode
from cmdai_cli.events.inputs import ReadStats
from cmdai_cli.values import plural


@dataclass
class ReplayResult:
    """What a replay came to. `read = sent + skipped + rejected + failed + pending`.

    Of the `failed`, `unreachable` are those whose last try got no answer or a 5xx; the
    rest were refused by the service (a 4xx, or 429 until the retries ran out). It is
    not in `as_json`, whose keys are the command's JSON output.
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
    # Why the run stopped early, the endpoint taken for down (delivery.Breaker).
    down: str | None = None

    @property
    def undelivered(self) -> int:
        """Events meant to go that did not, in this run or (resumed) earlier ones."""
        return (
            self.rejected + self.failed + self.pending + self.failed_before + self.rejected_before
        )

    def as_json(self) -> dict[str, Any]:
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
            "endpoint_down": self.down,
        }

    @property
    def exit_code(self) -> ExitCode:
        """A bad record under `--on-error fail` says it (4), then an interrupted run (130),
        then an endpoint taken for down (6), then what was not delivered
        (`_undelivered`); else 0."""
        if self.stopped_by is not None:
            return self.stopped_by.exit_code
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.down is not None:
            return ExitCode.UNREACHABLE
        if self.undelivered:
            return self._undelivered()[0]
        return ExitCode.OK

    @property
    def problem(self) -> str | None:
        if self.stopped_by is not None:
            return self.stopped_by.describe()
        if self.interrupted:
            return "interrupted; run the same command with --resume to continue"
        if self.down is not None:
            return (
                f"stopped: {self.down}; {self._undelivered()[1]}; run the same command "
                "with --resume to send the rest"
            )
        if self.undelivered:
            return self._undelivered()[1]
        return None

    def _undelivered(self) -> tuple[ExitCode, str]:
        """The exit for what was not delivered, and the line that counts it.

        Refusals (5) come first: sending again later does not help them, while for events
        that found no answer (6) it may; rejected or pending events alone make 1.
        """
        where = []
        if self.rejected:
            if self.dry_run:
                # A dry run writes no reject file: it says what the real run would reject.
                where.append(f"{self.rejected} would be rejected")
            elif self.rejects:
                where.append(f"{self.rejected} rejected (in {self.rejects})")
            else:
                where.append(f"{self.rejected} rejected")
        if self.failed:
            where.append(f"{self.failed} failed (in {self.dead_letter})")
        if self.pending:
            where.append(f"{self.pending} pending")
        if self.failed_before or self.rejected_before:
            earlier = self.failed_before + self.rejected_before
            where.append(f"{earlier} in earlier runs of this checkpoint")
        n = self.undelivered
        verb = "would not be delivered" if self.dry_run else "not delivered"
        line = f"{n} {plural(n, 'event')} {verb}: {', '.join(where)}"
        if self.failed > self.unreachable:
            return ExitCode.REFUSED, line
        if self.unreachable:
            return ExitCode.UNREACHABLE, line
        return ExitCode.FAILURE, line


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
