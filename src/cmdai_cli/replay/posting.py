"""Segment batches posted from forked worker processes, one per delivery thread.

Encoding a batch (the library's `json.dumps`) and driving its HTTP request is most of
what sending costs, and in the reading process it competes with reading for the one
interpreter lock. A forked worker inherits the loaded library and does that work on
another core; the batch crosses the pipe as compact JSON and only the answer comes
back. The parent alone keeps the checkpoint, the counters and the dead letters, so the
delivery guarantees are unchanged: a batch counts as sent only once its worker reports
Segment's 2xx.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import orjson

from cmdai_cli.segment_client import BatchResult, post_batch


def available() -> bool:
    """Whether workers can be forked here: on Linux, before any other thread runs.

    Forking while another thread runs could copy a lock that thread holds; elsewhere
    than Linux, forking a process that loaded system frameworks is unsafe. Then the
    delivery threads send from this process instead.
    """
    return sys.platform == "linux" and threading.active_count() == 1


class Pool:
    """`size` forked workers posting to `{host}/v1/batch`; `post` blocks for the answer."""

    def __init__(self, size: int, *, write_key: str, host: str, timeout: float, gzip: bool):
        import multiprocessing
        import queue

        # Loaded once, here, so that every worker inherits it instead of loading it again.
        import segment.analytics.request  # noqa: F401

        self._settings: dict[str, Any] = {
            "write_key": write_key,
            "host": host,
            "timeout": timeout,
            "gzip": gzip,
        }
        self._context = multiprocessing.get_context("fork")
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers: list[Any] = []
        for _ in range(size):
            self._idle.put(self._start())

    def _start(self) -> tuple[Any, Any]:
        parent, child = self._context.Pipe()
        # A worker must hold no copy of any parent end, its own included: else closing
        # them here (or this process dying) would never reach a worker as end-of-file.
        others = [parent, *(conn for _, conn in self._workers)]
        process = self._context.Process(
            target=_serve, args=(child, self._settings, others), daemon=True
        )
        process.start()
        child.close()
        self._workers.append((process, parent))
        return process, parent

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, replaced ones included."""
        return [process.pid for process, _ in self._workers]

    def post(self, items: list[Any]) -> BatchResult:
        try:
            body = orjson.dumps(items)
        except TypeError:  # not JSON as orjson knows it: send from this process instead
            return post_batch(items, **self._settings)
        worker = self._idle.get()
        try:
            worker[1].send_bytes(body)
            status, http_status, message, retry_after = orjson.loads(worker[1].recv_bytes())
        except (EOFError, OSError) as exc:
            # The worker died with the batch: nobody knows whether Segment got it, as
            # with any unanswered request; the retry policy decides.
            worker[1].close()
            worker = self._start()
            return BatchResult("unreachable", None, f"the sending process failed: {exc!r}")
        finally:
            self._idle.put(worker)
        return BatchResult(status, http_status, message, retry_after)

    def close(self) -> None:
        for _, conn in self._workers:
            conn.close()
        for process, _ in self._workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _serve(conn: Any, settings: dict[str, Any], others: list[Any]) -> None:
    for other in others:
        other.close()
    # Ctrl-C reaches the whole process group; the parent decides what becomes of the
    # batches in flight, so a worker finishes its request and waits for the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            body = conn.recv_bytes()
        except (EOFError, OSError):
            return
        result = post_batch(orjson.loads(body), **settings)
        answer = [result.status, result.http_status, result.message, result.retry_after]
        try:
            conn.send_bytes(orjson.dumps(answer))
        except OSError:
            return
