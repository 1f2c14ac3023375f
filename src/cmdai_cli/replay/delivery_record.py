"""What the delivery deals in: answers, its counters, its jobs, and the thread that
records answers.

Every target's `send` reports an `Answer`: the Command AI clients (`cmdai_cli.commandai`)
and the Segment target alike, so that one retry policy reads them all.

Recording an answer means writing dead letters and the checkpoint, and making them
durable, which takes an fsync. The delivery loop must not wait for that, so answered
jobs queue here; the thread takes everything that has queued since its last round,
records it all, makes it durable once (group commit), and only then says so.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from cmdai_cli.replay.batching import Batch


class Answer(NamedTuple):
    """The answer to one request: `status` None when none came (`timed_out` if none came
    in time). `remaining` and `reset` are the server's quota when it said (requests left
    in its window, seconds until the window resets), on any answer."""

    ok: bool
    status: int | None
    detail: str | None = None
    retry_after: float | None = None
    timed_out: bool = False
    remaining: int | None = None
    reset: float | None = None


@dataclass
class Counters:
    """What the delivery did and is doing; read by the summary and the progress display."""

    sent: int = 0
    failed: int = 0
    unreachable: int = 0  # of `failed`: no answer, or a 5xx, at the last try
    retries: int = 0
    requests: int = 0
    abandoned: int = 0
    retry_wait: float = 0.0  # seconds of waiting scheduled for retries, summed
    in_flight: int = 0
    max_in_flight: int = 0
    limit: int = 0  # the in-flight limit now
    waiting: int = 0  # requests waiting for a retry now
    max_waiting: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


Send = Callable[[Batch], Awaitable[Answer]]
Acked = Callable[[Batch, Answer], None]
Failed = Callable[[Batch, str, int | None, int], None]


@dataclass(eq=False)
class Job:
    """A batch on its way, from `submit` until it is recorded or abandoned."""

    batch: Batch
    attempts: int = 0
    waited: float = 0.0
    sent_at: float = 0.0  # when its last try went (time.monotonic)
    slot: bool = True  # holds an in-flight slot until recorded
    # What the recorder is to do: (answer) for an ack, (reason, status) for a failure.
    answer: Answer | None = None
    reason: str | None = None


T = TypeVar("T")


class Recorder(Generic[T]):
    """Runs `record(jobs)` then `recorded(jobs, error)` for each group, on its own thread.

    `record` may raise (a full disk); `recorded` gets the exception and must still give
    back whatever the jobs held.
    """

    def __init__(
        self,
        record: Callable[[list[T]], None],
        recorded: Callable[[list[T], BaseException | None], None],
    ) -> None:
        self.record = record
        self.recorded = recorded
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cmdai-replay-record", daemon=True)
        self._thread.start()

    def put(self, job: T) -> None:
        self._queue.put(job)

    def close(self) -> None:
        """Record what is queued, then end; returns when the thread has."""
        self._queue.put(None)
        while not self._ended.wait(0.2):  # not Thread.join: see Delivery.finish
            pass

    def _run(self) -> None:
        try:
            self._record_all()
        finally:
            self._ended.set()

    def _record_all(self) -> None:
        jobs_queue = self._queue
        done = False
        while not done:
            first = jobs_queue.get()
            if first is None:
                return
            jobs = [first]
            while True:  # everything answered meanwhile goes into one durable write
                try:
                    more = jobs_queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                jobs.append(more)
            error: BaseException | None = None
            try:
                self.record(jobs)
            except BaseException as exc:
                error = exc
            self.recorded(jobs, error)
