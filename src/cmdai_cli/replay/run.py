"""One replay, start to finish: read, select, prepare, batch, send, record, count.

The reading thread does everything up to cutting batches; `Delivery` sends them and
records each answered batch in the checkpoint; a thread of its own reports progress several
times a second, whatever the reader is waiting for. Every record read ends up counted
once: sent, skipped (filtered out, another shard's, done in an earlier run, or nothing
to record), rejected (unreadable, invalid or over the size limit: the reject file),
failed (refused or unanswered for good: the dead-letter file), or, when the run is
interrupted, still pending (sent again by `--resume`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from cmdai_cli import _speed
from cmdai_cli.errors import CmdaiError, DataError
from cmdai_cli.events.reader import read_batches
from cmdai_cli.events.records import BadRecord, ErrorPolicy, Event
from cmdai_cli.profile import Resolved
from cmdai_cli.replay.batching import Batch, Pending
from cmdai_cli.replay.checkpoint import Checkpoint, Ranges
from cmdai_cli.replay.delivery import Counters, Delivery
from cmdai_cli.replay.delivery_control import Breaker, RateLimiter
from cmdai_cli.replay.errorlog import unwrap
from cmdai_cli.replay.options import EventSource, ReplayOptions
from cmdai_cli.replay.result import Progress, ReplayResult
from cmdai_cli.replay.select import ensure_message_id, strip_transport
from cmdai_cli.replay.setup import Setup, estimate_total
from cmdai_cli.retry import RetryPolicy
from cmdai_cli.segment.messages import REPLAY_REQUESTS_PER_SECOND
from cmdai_cli.stopping import stop_on_signals

# ---------------------------------------------------------------- the run


def source_batches(source: EventSource, size: int = 1000) -> Iterator[list[Event]]:
    """Events from memory as the reader hands out a file's: in lists, positioned, their
    line their position + 1."""
    name = source.name
    batch: list[Event] = []
    for position, value in enumerate(source.events):
        batch.append(_new_event(Event, (position, name, position + 1, value, 0)))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# Pending is a NamedTuple; building it as a plain tuple skips its Python-level __new__.
_new_pending = cast(Callable[[type, tuple[Any, ...]], Pending], tuple.__new__)
_new_event = cast(Callable[[type, tuple[Any, ...]], Event], tuple.__new__)


class _Stop(Exception):
    """--limit reached."""


class _Invalid(DataError):
    """An event the target cannot take, under --on-error fail (already counted as read)."""


def replay(
    options: ReplayOptions,
    settings: Resolved,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Run one replay; see the module docstring. Never raises for undelivered events:
    the result counts them, and says the exit. Raises CmdaiError for what
    stops a run before it starts (settings, unreadable checkpoint); a bad record under
    `--on-error fail` ends reading and comes back as `result.stopped_by`. `warn` is
    told what the user should know before the run goes on (a replay already done, run
    again without --resume); `on_progress` gets a snapshot several times a second.

    Ctrl-C or SIGTERM stops it within about a second, what was in flight left pending
    (`result.interrupted`); a second one ends the process at once. That is safe: every
    acknowledged batch is already on disk, and what was in flight is sent again by
    --resume, as after a kill."""
    with stop_on_signals(interrupt=True, stopping=_STOPPING, at_once=_STOPPED):
        return _replay(options, settings, on_progress, warn)


_STOPPING = b"cmdai: warning: stopping; press Ctrl-C again to stop at once\n"
_STOPPED = b"cmdai: error: stopped at once; run the same command with --resume to continue\n"


def _replay(
    options: ReplayOptions,
    settings: Resolved,
    on_progress: Callable[[Progress], None] | None,
    warn: Callable[[str], None] | None,
) -> ReplayResult:
    setup = Setup.make(options, settings)
    run: _Run | None = None
    try:
        with _speed.fewer_collections():
            run = _Run(setup, on_progress)
            return run.run(warn)
    finally:
        # After a stop, what is still being sent is dropped (it stays pending).
        setup.target.close(
            abort=run is None or run.result.interrupted or run.result.down is not None
        )


class _Run:
    def __init__(self, setup: Setup, on_progress: Callable[[Progress], None] | None) -> None:
        self.setup = setup
        self.options = setup.options
        self.target = setup.target
        self.rejects = setup.rejects
        self.dead = setup.dead
        self.on_progress = on_progress
        source = self.options.source
        if on_progress is None:
            self.total = None
        else:
            self.total = estimate_total(setup.inputs) if source is None else source.total
        self.result = ReplayResult(
            setup.target.name, setup.target.destination, dry_run=self.options.dry_run
        )
        self.counters = Counters()
        self.handed = 0  # events in batches handed to the delivery
        self.building: list[Pending] = []  # the events of the batch being built
        self.done = 0  # records accounted for, as last shown

    # ------------------------------------------------------------------ progress

    PROGRESS_EVERY = 0.2  # seconds

    def report_progress(self) -> None:
        if self.on_progress is None:
            return
        s, c = self.result, self.counters
        sent = s.would_send if s.dry_run else c.sent
        # Records accounted for: read, less the events not yet answered for. Read from
        # another thread while the reader moves events along, it can be off by a batch
        # for a moment: it is shown never going back.
        outstanding = 0 if s.dry_run else self.handed + len(self.building) - c.sent - c.failed
        self.done = max(self.done, s.read - outstanding)
        self.on_progress(
            Progress(
                s.read,
                sent,
                c.failed,
                self.rejects.count,
                c.retries,
                self.total,
                done=self.done,
                in_flight=c.in_flight,
                limit=c.limit,
                waiting=c.waiting,
            )
        )

    @contextlib.contextmanager
    def _reporting_progress(self) -> Iterator[None]:
        if self.on_progress is None:
            yield
            return
        ended = threading.Event()

        def reporter() -> None:
            while not ended.wait(self.PROGRESS_EVERY):
                self.report_progress()

        thread = threading.Thread(target=reporter, name="cmdai-replay-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            ended.set()

    # ------------------------------------------------------------------ the run

    def run(self, warn: Callable[[str], None] | None = None) -> ReplayResult:
        options = self.options
        started = time.monotonic()
        checkpoint, done = self.setup.resume_from(self.result, warn)
        delivery = None if checkpoint is None else self._delivery(checkpoint, warn)
        if delivery is not None:
            self.counters = delivery.counters
        result = self.result
        try:
            with self._reporting_progress():
                try:
                    self._feed(done, delivery)
                except KeyboardInterrupt:
                    result.interrupted = True
                    if delivery is not None:
                        delivery.stop()
                if delivery is not None:
                    try:
                        delivery.finish()
                    except KeyboardInterrupt:
                        result.interrupted = True
                        delivery.stop()
                        delivery.finish()
        finally:
            self.setup.close_logs()
            if checkpoint is not None:
                checkpoint.close()
        if delivery is not None and delivery.error is not None:
            error = delivery.error
            if isinstance(error, CmdaiError):
                raise error
            raise CmdaiError(f"replay stopped: {error}") from error
        if delivery is not None:
            result.down = delivery.down
        c = self.counters
        result.sent = c.sent
        result.failed = c.failed
        result.unreachable = c.unreachable
        result.retries = c.retries
        result.requests = c.requests
        result.max_in_flight = c.max_in_flight
        result.retry_wait = c.retry_wait
        result.pending = c.abandoned + self.unsent
        result.rejected = self.rejects.count
        result.rejected_reasons = dict(self.rejects.reasons)
        result.failed_reasons = dict(self.dead.reasons)
        result.skipped = result.filtered + result.already_done + result.ignored
        result.elapsed = time.monotonic() - started
        if not options.dry_run:
            result.checkpoint = str(self.setup.checkpoint_path)
            if self.rejects.count:
                result.rejects = str(self.rejects.path)
            if self.dead.count:
                result.dead_letter = str(self.dead.path)
        return result

    def _delivery(
        self, checkpoint: Checkpoint, warn: Callable[[str], None] | None = None
    ) -> Delivery:
        options = self.options
        policy = RetryPolicy(
            max_retries=options.max_retries,
            base_delay=options.backoff,
            max_delay=max(options.backoff, min(30.0, options.max_wait)),
            max_total_wait=options.max_wait,
        )
        limiter = RateLimiter(options.rate) if options.rate else None

        # Both run on the delivery's recording thread, which makes the checkpoint (and
        # first the dead letters) durable once for all it records at a time.
        def on_ack(batch: Batch, _answer: Any) -> None:
            checkpoint.commit(batch.start, batch.end, rejected=batch.rejected, wait=False)
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
            checkpoint.commit(
                batch.start, batch.end, failed=len(batch), rejected=batch.rejected, wait=False
            )
            with self.counters.lock:
                self.counters.failed += len(batch)
                if status is None or status >= 500:
                    self.counters.unreachable += len(batch)

        return Delivery(
            self.target.send,
            on_ack=on_ack,
            on_fail=on_fail,
            policy=policy,
            concurrency=options.ceiling,
            limiter=limiter,
            # Segment batches weigh up to 500 KB, and thousands of events, each: keep
            # fewer of them queued (memory), where one-event requests may queue by the
            # hundred.
            backlog=0 if self.target.name == "segment" else None,
            request_rate=REPLAY_REQUESTS_PER_SECOND if self.target.name == "segment" else None,
            flush=checkpoint.flush,
            close=self.target.aclose,
            breaker=Breaker(options.timeout),
            warn=warn,
        )

    unsent = 0  # events read into a batch that was never handed over (interrupted)

    def _feed(self, done: Ranges, delivery: Delivery | None) -> None:
        options = self.options
        target = self.target
        result = self.result
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
                result.would_send += len(batch)
                return
            self.handed += len(batch)
            self.building = builder.events
            try:
                delivery.submit(batch)
            except KeyboardInterrupt:
                self.unsent += len(batch)
                raise

        def on_bad(bad: BadRecord) -> None:
            nonlocal last
            result.read += 1
            position = bad.position
            if position is not None:
                last = max(last, position + 1)
                if shard is not None and not shard.owns_position(position):
                    result.filtered += 1
                    return
                if position in done:
                    result.already_done += 1
                    return
            rejects.write(bad.reason, source=bad.source, line=bad.line, index=position)

        policy = ErrorPolicy(options.on_error, report=on_bad)
        reader = (
            source_batches(options.source)
            if options.source is not None
            else read_batches(
                self.setup.inputs,
                on_error=policy,
                max_event_bytes=None,
                max_record_bytes=options.max_record_bytes,
            )
        )
        prepare = target.prepare
        # The builder is reset in place by `take`, so its methods can be looked up once.
        fits = builder.fits
        add = builder.add
        self.building = builder.events
        any_done = bool(done)
        try:
            if limit == 0:
                raise _Stop()
            for events in reader:
                for ev in events:
                    position = ev.position
                    result.read += 1
                    value = ev.value
                    if "error" in value:
                        unwrapped = unwrap(value)
                        if unwrapped is None:
                            result.ignored += 1
                            last = position + 1
                            continue
                        value = unwrapped
                    if "sentAt" in value or "receivedAt" in value or "writeKey" in value:
                        strip_transport(value)
                    if filters is not None and not filters.matches(value):
                        result.filtered += 1
                        last = position + 1
                        continue
                    message_id = value.get("messageId")
                    if type(message_id) is not str or not message_id:
                        message_id = ensure_message_id(value)
                    if shard is not None and not shard.owns(message_id):
                        result.filtered += 1
                        last = position + 1
                        continue
                    selected += 1
                    if any_done and position in done:
                        result.already_done += 1
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
                            result.ignored += 1
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
        except _Stop:
            pass
        except _Invalid as exc:
            result.stopped_by = exc
        except DataError as exc:
            result.read += 1  # the bad record the reader stopped at
            result.stopped_by = exc
        except KeyboardInterrupt:
            self.unsent += len(builder.events)
            raise
        dispatch(builder.take(last))
