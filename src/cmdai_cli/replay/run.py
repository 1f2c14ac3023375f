"""One replay, start to finish: read, select, prepare, batch, send, record, summarise.

The reading thread does everything up to cutting batches; `Delivery` workers send them
and record each answered batch in the checkpoint. Every record read ends up counted
once: sent, skipped (filtered out, another shard's, done in an earlier run, or nothing
to record), rejected (unreadable, invalid or over the size limit: the reject file),
failed (refused or unanswered for good: the dead-letter file), or, when the run is
interrupted, still pending (sent again by `--resume`).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from cmdai_cli.errors import CmdaiError, ConfigError, DataError, UsageError
from cmdai_cli.events.inputs import Input, expand_inputs
from cmdai_cli.events.reader import read_batches
from cmdai_cli.events.records import BadRecord, ErrorPolicy
from cmdai_cli.replay.batching import Batch, Pending
from cmdai_cli.replay.checkpoint import Checkpoint, Ranges, fingerprint, input_names, run_key
from cmdai_cli.replay.delivery import Counters, Delivery, RateLimiter
from cmdai_cli.replay.errorlog import ErrorLog, unwrap
from cmdai_cli.replay.select import Filters, Shard, ensure_message_id, strip_transport
from cmdai_cli.replay.targets import (
    DEFAULT_BULK_BATCH,
    BulkIdentifyTarget,
    SegmentTarget,
    Target,
    TargetName,
    WebhookTarget,
)
from cmdai_cli.retry import RetryPolicy
from cmdai_cli.segment_limits import MAX_BATCH_MESSAGES

if TYPE_CHECKING:
    from cmdai_cli.mapping.webhook import WebhookMapping
    from cmdai_cli.profile import Resolved


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
    batch_size: int | None = None
    concurrency: int = 4
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

    def check(self) -> None:
        if self.concurrency < 1:
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


@dataclass
class Summary:
    """What a replay came to. `read = sent + skipped + rejected + failed + pending`."""

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
    would_send: int = 0
    interrupted: bool = False
    checkpoint: str | None = None
    rejects: str | None = None
    dead_letter: str | None = None
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    failed_reasons: dict[str, int] = field(default_factory=dict)
    stopped_by: CmdaiError | None = None

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
        }

    def lines(self) -> list[str]:
        """The human summary."""
        rate = self.sent / self.elapsed if self.elapsed > 0 else 0.0
        verb = "would be sent" if self.dry_run else "sent"
        count = self.would_send if self.dry_run else self.sent
        head = (
            f"replay to {self.target} ({self.destination}): {self.read} read, {count} {verb}, "
            f"{self.skipped} skipped, {self.rejected} rejected, {self.failed} failed, "
            f"{self.retries} retries in {self.elapsed:.1f}s"
        )
        if not self.dry_run and self.sent:
            head += f" ({rate:,.0f} events/s)"
        out = [head]
        if self.skipped:
            parts = [
                f"{n} {what}"
                for n, what in (
                    (self.filtered, "not selected"),
                    (self.already_done, "done in an earlier run"),
                    (self.ignored, "with nothing to record"),
                )
                if n
            ]
            out.append("  skipped: " + ", ".join(parts))
        if self.rejected:
            where = f", written to {self.rejects}" if self.rejects else ""
            out.append(f"  rejected: {self.rejected} that cannot be sent as they are{where}")
            out.extend(f"    {reason}: {n}" for reason, n in _top(self.rejected_reasons))
        if self.failed:
            out.append(
                f"  failed: {self.failed} not delivered, written to {self.dead_letter} "
                "(fix the cause, then replay that file)"
            )
            out.extend(f"    {reason}: {n}" for reason, n in _top(self.failed_reasons))
        if self.failed_before or self.rejected_before:
            out.append(
                f"  earlier runs of this checkpoint: {self.failed_before} failed, "
                f"{self.rejected_before} rejected (still in their dead-letter and reject files)"
            )
        if self.pending:
            out.append(
                f"  pending: {self.pending} not yet acknowledged; run the same command with "
                "--resume to send them"
            )
        if self.checkpoint and not self.dry_run:
            out.append(f"  checkpoint: {self.checkpoint}")
        return out


def _top(reasons: dict[str, int], n: int = 5) -> list[tuple[str, int]]:
    return sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass
class Progress:
    """A snapshot for a progress display; `total` is an estimate of records, or None."""

    read: int
    sent: int
    failed: int
    rejected: int
    retries: int
    total: int | None


# ---------------------------------------------------------------- targets from settings


def _mapping(options: ReplayOptions, settings: Resolved) -> WebhookMapping:
    from cmdai_cli.mapping.file import load_mapping_file
    from cmdai_cli.mapping.webhook import parse_mapping

    if options.mapping_file is not None:
        return load_mapping_file(options.mapping_file)
    source = f"{settings.path} [profiles.{settings.profile}.mapping]"
    return parse_mapping(settings.get("mapping"), source=source)


def make_target(options: ReplayOptions, settings: Resolved) -> Target:
    """The target named by `--to`, from flags and the profile. A dry run needs no secrets."""
    from cmdai_cli.profile import check_url

    dry = options.dry_run
    size = _batch_size(options)
    if options.to == "segment":
        host = check_url(options.host) if options.host else str(settings.get("segment_host"))
        key = "" if dry else settings.require("write_key", hint="run `cmdai connect` first")
        return SegmentTarget(
            key, host, size, options.timeout, options.gzip, 0 if dry else options.concurrency
        )
    if options.to == "webhook":
        url = options.url or settings.get("webhook_url")
        if url:
            url = check_url(url, what="webhook URL", base=False)
        elif dry:
            url = "https://webhook.invalid"
        else:
            raise ConfigError(
                "no webhook URL: give --url or set webhook_url in the profile",
                hint="Command AI shows the URL in its Segment webhook settings",
            )
        return WebhookTarget(
            url,
            _mapping(options, settings),
            settings.get("webhook_shared_secret") or None,
            size,
            options.timeout,
            options.concurrency,
        )
    if options.to == "bulk-identify":
        api_host = options.host or str(settings.get("commandai_api_host"))
        api_host = check_url(api_host)
        org = settings.get("org_id") or ("ORG" if dry else settings.require("org_id"))
        token = "" if dry else settings.require("commandai_api_token")
        return BulkIdentifyTarget(
            api_host,
            str(org),
            token,
            _mapping(options, settings),
            settings.get("commandai_auth_header"),
            size,
            options.timeout,
            options.concurrency,
        )
    raise UsageError(f"unknown target {options.to!r}")


def _batch_size(options: ReplayOptions) -> int | None:
    """--batch-size, capped at one second's worth under --rate so that sending stays even."""
    size = options.batch_size
    if options.rate is None:
        return size
    cap = max(1, int(options.rate))
    if options.to == "webhook":
        return min(size, cap) if size else None
    default = MAX_BATCH_MESSAGES if options.to == "segment" else DEFAULT_BULK_BATCH
    return min(size or default, cap)


def default_paths(key: str) -> dict[str, Path]:
    from cmdai_cli.profile import state_dir

    base = state_dir() / "replay"
    return {
        "checkpoint": base / f"{key}.checkpoint",
        "rejects": base / f"{key}.rejects.ndjson",
        "dead_letter": base / f"{key}.dead-letter.ndjson",
    }


def estimate_total(inputs: Sequence[Input]) -> int | None:
    """Lines in the inputs when they are all plain files (for an ETA); else None."""
    total = 0
    for item in inputs:
        if item.path is None:
            return None
        try:
            with open(item.path, "rb") as handle:
                chunk = handle.read(1 << 20)
                if chunk.startswith(b"\x1f\x8b"):
                    return None
                while chunk:
                    total += chunk.count(b"\n")
                    chunk = handle.read(1 << 20)
        except OSError:
            return None
    return total


# ---------------------------------------------------------------- the run


# Pending is a NamedTuple; building it as a plain tuple skips its Python-level __new__.
_new_pending = cast(Callable[[type, tuple[Any, ...]], Pending], tuple.__new__)


class _Stop(Exception):
    """--limit reached."""


class _Invalid(DataError):
    """An event the target cannot take, under --on-error fail (already counted as read)."""


def replay(
    options: ReplayOptions,
    settings: Resolved,
    *,
    progress: Callable[[Progress], None] | None = None,
) -> Summary:
    """Run one replay; see the module docstring. Never raises for undelivered events:
    the summary counts them (the caller decides the exit). Raises CmdaiError for what
    stops a run before it starts (settings, unreadable checkpoint); a bad record under
    `--on-error fail` ends reading and comes back as `summary.stopped_by`."""
    options.check()
    inputs = expand_inputs(list(options.inputs))
    target = make_target(options, settings)
    try:
        with _fewer_collections():
            return _Run(options, inputs, target, progress).run()
    finally:
        target.close()


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    # Batches keep tens of thousands of event dicts alive at once, and the default
    # thresholds make the cyclic collector walk them every few hundred allocations:
    # about a sixth of the run's time. Events hold no reference cycles, so collecting
    # less often costs nothing; what was loaded before the run is left out entirely.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _Run:
    def __init__(
        self,
        options: ReplayOptions,
        inputs: list[Input],
        target: Target,
        progress: Callable[[Progress], None] | None,
    ) -> None:
        self.options = options
        self.inputs = inputs
        self.target = target
        self.progress_cb = progress
        self.total = estimate_total(inputs) if progress is not None else None
        identity = {
            "target": target.name,
            "destination": target.destination,
            "inputs": input_names(inputs),
            "filters": options.filters.as_dict(),
            "shard": str(options.shard) if options.shard else None,
            "limit": options.limit,
        }
        self.key = run_key(identity)
        self.header = {
            **identity,
            "key": self.key,
            "files": fingerprint(inputs),
            "created": datetime.now(timezone.utc).isoformat(),
        }
        paths = default_paths(self.key)
        self.checkpoint_path = options.checkpoint or paths["checkpoint"]
        dry = options.dry_run
        self.rejects = ErrorLog(None if dry else options.rejects or paths["rejects"], target.name)
        self.dead = ErrorLog(
            None if dry else options.dead_letter or paths["dead_letter"], target.name
        )
        self.summary = Summary(target.name, target.destination, dry_run=dry)
        self.counters = Counters()
        self.last_tick = 0.0

    # ------------------------------------------------------------------ callbacks

    def tick(self, force: bool = False) -> None:
        if self.progress_cb is None:
            return
        now = time.monotonic()
        if not force and now - self.last_tick < 0.1:
            return
        self.last_tick = now
        s, c = self.summary, self.counters
        sent = s.would_send if s.dry_run else c.sent
        rejected = self.rejects.count
        self.progress_cb(Progress(s.read, sent, c.failed, rejected, c.retries, self.total))

    # ------------------------------------------------------------------ the run

    def run(self) -> Summary:
        options = self.options
        started = time.monotonic()
        checkpoint: Checkpoint | None = None
        done = Ranges()
        if options.dry_run:
            if options.resume and self.checkpoint_path.exists():
                from cmdai_cli.replay.checkpoint import read_journal

                _, pairs, earlier = read_journal(self.checkpoint_path)
                done = Ranges(pairs)
                self.summary.failed_before = earlier["failed"]
                self.summary.rejected_before = earlier["rejected"]
        else:
            checkpoint = Checkpoint.open(self.checkpoint_path, self.header, resume=options.resume)
            checkpoint.before_write = [self.rejects.sync, self.dead.sync]
            done = Ranges(checkpoint.done.pairs())
            self.summary.failed_before = checkpoint.undelivered["failed"]
            self.summary.rejected_before = checkpoint.undelivered["rejected"]
        delivery = None if checkpoint is None else self._delivery(checkpoint)
        if delivery is not None:
            self.counters = delivery.counters
        summary = self.summary
        try:
            try:
                self._feed(done, delivery)
            except KeyboardInterrupt:
                summary.interrupted = True
                if delivery is not None:
                    delivery.stop()
            if delivery is not None:
                try:
                    delivery.finish(self.tick)
                except KeyboardInterrupt:
                    summary.interrupted = True
                    delivery.stop()
                    delivery.finish()
        finally:
            self.rejects.close()
            self.dead.close()
            if checkpoint is not None:
                checkpoint.close()
        if delivery is not None and delivery.error is not None:
            error = delivery.error
            if isinstance(error, CmdaiError):
                raise error
            raise CmdaiError(f"replay stopped: {error}") from error
        c = self.counters
        summary.sent = c.sent
        summary.failed = c.failed
        summary.retries = c.retries
        summary.requests = c.requests
        summary.pending = c.abandoned + self.unsent
        summary.rejected = self.rejects.count
        summary.rejected_reasons = dict(self.rejects.reasons)
        summary.failed_reasons = dict(self.dead.reasons)
        summary.skipped = summary.filtered + summary.already_done + summary.ignored
        summary.elapsed = time.monotonic() - started
        if not options.dry_run:
            summary.checkpoint = str(self.checkpoint_path)
            if self.rejects.count:
                summary.rejects = str(self.rejects.path)
            if self.dead.count:
                summary.dead_letter = str(self.dead.path)
        return summary

    def _delivery(self, checkpoint: Checkpoint) -> Delivery:
        options = self.options
        policy = RetryPolicy(
            max_retries=options.max_retries,
            base_delay=options.backoff,
            max_delay=max(options.backoff, min(30.0, options.max_wait)),
            max_total_wait=options.max_wait,
        )
        limiter = RateLimiter(options.rate) if options.rate else None

        def on_ack(batch: Batch, _answer: Any) -> None:
            checkpoint.commit(batch.start, batch.end, rejected=batch.rejected)
            with self.counters.lock:
                self.counters.sent += len(batch)

        def on_fail(batch: Batch, reason: str, status: int | None, attempts: int) -> None:
            for item in batch.events:
                self.dead.write(
                    reason,
                    event=item.event,
                    source=item.source,
                    line=item.line,
                    index=item.position,
                    status=status,
                    attempts=attempts,
                )
            # The dead-letter lines are synced before this range is recorded.
            checkpoint.commit(batch.start, batch.end, failed=len(batch), rejected=batch.rejected)
            with self.counters.lock:
                self.counters.failed += len(batch)

        return Delivery(
            self.target.send,
            on_ack=on_ack,
            on_fail=on_fail,
            policy=policy,
            concurrency=options.concurrency,
            limiter=limiter,
        )

    unsent = 0  # events read into a batch that was never handed over (interrupted)

    def _feed(self, done: Ranges, delivery: Delivery | None) -> None:
        options = self.options
        target = self.target
        summary = self.summary
        rejects = self.rejects
        filters = options.filters if options.filters.active else None
        shard = options.shard
        limit = options.limit
        fail = options.on_error == "fail"
        builder = target.builder(0)
        last = 0
        selected = 0

        rejected_before_cut = [0]

        def dispatch(batch: Batch) -> None:
            batch.rejected = rejects.count - rejected_before_cut[0]
            rejected_before_cut[0] = rejects.count
            if delivery is None:
                summary.would_send += len(batch)
                return
            try:
                delivery.submit(batch)
            except KeyboardInterrupt:
                self.unsent += len(batch)
                raise

        def on_bad(bad: BadRecord) -> None:
            nonlocal last
            summary.read += 1
            position = bad.position
            if position is not None:
                last = max(last, position + 1)
                if shard is not None and not shard.owns_position(position):
                    summary.filtered += 1
                    return
                if position in done:
                    summary.already_done += 1
                    return
            rejects.write(bad.reason, source=bad.source, line=bad.line, index=position)

        policy = ErrorPolicy(options.on_error, report=on_bad)
        reader = read_batches(self.inputs, on_error=policy, max_event_bytes=None)
        prepare = target.prepare
        # The builder is reset in place by `take`, so its methods can be looked up once.
        fits = builder.fits
        add = builder.add
        tick = self.tick if self.progress_cb is not None else None
        any_done = bool(done)
        try:
            if limit == 0:
                raise _Stop()
            for events in reader:
                for ev in events:
                    position = ev.position
                    summary.read += 1
                    value = ev.value
                    if "error" in value:
                        unwrapped = unwrap(value)
                        if unwrapped is None:
                            summary.ignored += 1
                            last = position + 1
                            continue
                        value = unwrapped
                    if "sentAt" in value or "receivedAt" in value or "writeKey" in value:
                        strip_transport(value)
                    if filters is not None and not filters.matches(value):
                        summary.filtered += 1
                        last = position + 1
                        continue
                    message_id = value.get("messageId")
                    if type(message_id) is not str or not message_id:
                        message_id = ensure_message_id(value)
                    if shard is not None and not shard.owns(message_id):
                        summary.filtered += 1
                        last = position + 1
                        continue
                    selected += 1
                    if any_done and position in done:
                        summary.already_done += 1
                    else:
                        prepared = prepare(value)
                        kind = prepared[0]
                        if kind == "send":
                            size = prepared[2]
                            if not fits(size):
                                dispatch(builder.take(position))
                            pending = _new_pending(Pending, (position, ev[1], ev[2], value))
                            if add(pending, prepared[1], size):
                                dispatch(builder.take(position + 1))
                        elif kind == "skip":
                            summary.ignored += 1
                        else:
                            reason = prepared.reason or "invalid event"
                            if kind == "invalid" and fail:
                                raise _Invalid(reason, source=ev.source, line=ev.line)
                            rejects.write(
                                reason,
                                event=value,
                                source=ev.source,
                                line=ev.line,
                                index=position,
                            )
                    last = position + 1
                    if limit is not None and selected >= limit:
                        raise _Stop()
                if tick is not None:
                    tick()
        except _Stop:
            pass
        except _Invalid as exc:
            summary.stopped_by = exc
        except DataError as exc:
            summary.read += 1  # the bad record the reader stopped at
            summary.stopped_by = exc
        except KeyboardInterrupt:
            self.unsent = len(builder.events)
            raise
        dispatch(builder.take(last))
