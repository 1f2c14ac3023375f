"""Segment batches posted from a forked worker process.

Encoding a batch (the library's `json.dumps`) and driving its HTTP request is most of
what sending costs, and in the reading process it competes with reading for the one
interpreter lock. One forked worker, with a thread per request in flight, takes that
work to another core: each batch crosses the pipe as compact JSON and only the answer
comes back. The worker loads the library itself, beside the reading rather than before
it. The parent alone keeps the checkpoint, the counters and the dead letters, so the
delivery guarantees are unchanged: a batch counts as sent only once the worker reports
Segment's 2xx, and a batch whose answer was lost with the worker is unanswered, which
the retry policy handles like any other.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import signal
import sys
import threading
from concurrent.futures import Future, InvalidStateError
from typing import Any

import orjson

from cmdai_cli import _speed
from cmdai_cli.segment.sender import BatchResult, post_batch


def available() -> bool:
    """Whether the worker can be forked here: on Linux, before any other thread runs.

    Forking while another thread runs could copy a lock that thread holds; elsewhere
    than Linux, forking a process that loaded system frameworks is unsafe. Then the
    delivery threads send from this process instead.
    """
    return sys.platform == "linux" and threading.active_count() == 1


class Pool:
    """A forked worker posting up to `size` batches at once to `{host}/v1/batch`."""

    def __init__(self, size: int, *, write_key: str, host: str, timeout: float, gzip: bool):
        self._settings: dict[str, Any] = {
            "write_key": write_key,
            "host": host,
            "timeout": timeout,
            "gzip": gzip,
        }
        context = multiprocessing.get_context("fork")
        # One pipe each way, so that closing the one this process writes ends the worker
        # even while the answer reader waits on the other. The worker must hold no copy
        # of this process's ends: else closing them, or this process dying, would never
        # reach it as end-of-file.
        jobs_in, self._jobs = context.Pipe(duplex=False)
        self._answers, answers_out = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_serve,
            args=(jobs_in, answers_out, self._settings, size, (self._jobs, self._answers)),
            daemon=True,
        )
        self.process.start()
        jobs_in.close()
        answers_out.close()
        self._send_lock = threading.Lock()
        self._waiting: dict[int, Future[BatchResult]] = {}
        self._next = 0
        self._alive = True
        self._reader = threading.Thread(target=self._read, name="cmdai-replay-answers")
        self._reader.daemon = True
        self._reader.start()

    def post(self, body: bytes | bytearray) -> BatchResult:
        """Post one batch, given as a JSON array of its messages; wait for the answer."""
        return self.submit(body).result()

    def submit(self, body: bytes | bytearray) -> Future[BatchResult]:
        """Post one batch; its answer to come. Cancelling the future drops the answer."""
        answer: Future[BatchResult] = Future()
        with self._send_lock:
            if not self._alive:
                # The worker is gone; a new one cannot safely be forked with threads
                # running, so the rest is sent from here, a thread each.
                def fallback() -> None:
                    _settle(answer, post_batch(orjson.loads(body), **self._settings))

                threading.Thread(target=fallback, daemon=True).start()
                return answer
            self._next += 1
            ident = self._next
            self._waiting[ident] = answer
            try:
                # Two messages, so that the body is written from where it is.
                self._jobs.send_bytes(ident.to_bytes(8, "big"))
                self._jobs.send_bytes(body)
            except OSError as exc:
                del self._waiting[ident]
                reason = f"the sending process failed: {exc!r}"
                _settle(answer, BatchResult("unreachable", None, reason))
        return answer

    def _read(self) -> None:
        while True:
            try:
                ident, status, http_status, message, retry_after = orjson.loads(
                    self._answers.recv_bytes()
                )
            except (EOFError, OSError) as exc:
                with self._send_lock:
                    self._alive = False
                    lost, self._waiting = self._waiting, {}
                for future in lost.values():
                    # Whether Segment got these is unknown, as with any lost answer.
                    reason = f"the sending process failed: {exc!r}"
                    _settle(future, BatchResult("unreachable", None, reason))
                return
            with self._send_lock:
                future = self._waiting.pop(ident)
            _settle(future, BatchResult(status, http_status, message, retry_after))

    def close(self, *, abort: bool = False) -> None:
        """Let the worker finish its requests and end; with `abort`, end it now."""
        self._jobs.close()
        if not abort:
            self.process.join(timeout=float(self._settings["timeout"]) + 5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._reader.join(timeout=5)


def _settle(future: Future[BatchResult], result: BatchResult) -> None:
    # A stopped replay cancels the futures it no longer waits for.
    with contextlib.suppress(InvalidStateError):
        future.set_result(result)


def _serve(
    jobs_in: Any, answers_out: Any, settings: dict[str, Any], size: int, parent_ends: Any
) -> None:
    for end in parent_ends:
        end.close()
    # Ctrl-C reaches the whole process group, and so may SIGTERM (a CI runner, `kill` of
    # a group); the parent decides what becomes of the batches in flight, so the worker
    # finishes its requests (each within its time-out) and waits for the pipe. It must
    # not run the parent's handlers it was forked with: they would print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _speed.forked_worker()
    # The Segment library (70 ms and more to import, python -X importtime) is loaded here,
    # in the worker, while the parent reads, rather than by the parent before it reads.
    import segment.analytics.request  # noqa: F401

    jobs: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
    send_lock = threading.Lock()

    def work() -> None:
        while (job := jobs.get()) is not None:
            ident, body = job
            result = post_batch(orjson.loads(body), **settings)
            answer = (ident, result.status, result.http_status, result.message, result.retry_after)
            try:
                with send_lock:
                    answers_out.send_bytes(orjson.dumps(answer))
            except OSError:
                return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, size))]
    for thread in threads:
        thread.start()
    while True:
        try:
            ident = jobs_in.recv_bytes()
            body = jobs_in.recv_bytes()
        except (EOFError, OSError):
            break
        jobs.put((int.from_bytes(ident, "big"), body))
    # The parent is gone or done: finish what is in flight (each request has its
    # time-out), then leave.
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    answers_out.close()
