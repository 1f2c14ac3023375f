"""Garbage-collector tuning: each trick, where it is used, and what it bought.

Each trick names the benchmark that shows what it bought. They are safe because the
objects involved hold no reference cycles that only the cyclic collector could free.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Thresholds for bulk work: the youngest generation is collected after 50,000 net
# allocations instead of 700, so batches of tens of thousands of event dicts are not
# walked every few hundred allocations.
BULK_THRESHOLDS = (50_000, 50, 1000)


def skip_final_collection() -> None:
    """Leave everything alive out of the collection the interpreter runs on its way out.

    Used by `cli.main` as the process ends. After a replay that last pass took longer
    than its last batch (benchmarks/replay.py); what it could free is about to go anyway.
    Files are closed by then (their owners close them), and stdout/stderr are flushed.
    """
    gc.freeze()


def settle_long_lived() -> None:
    """Keep what is loaded so far out of every later collection.

    Used by a server (`listen`) once it is up: its modules and objects live as long as
    the process, and each full collection would walk them again for nothing.
    """
    gc.freeze()


def forked_worker() -> None:
    """Tune the collector of a forked worker process (replay's Segment poster).

    The worker starts with a copy of the parent's whole heap. Left in the collector's
    generations, every full collection would walk it, and writing its headers would
    copy page after page of it (copy-on-write); the batches it decodes hold no cycles,
    so collecting rarely costs nothing.
    """
    gc.freeze()
    gc.set_threshold(*BULK_THRESHOLDS)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect rarely during a bulk run, and not what was loaded before it.

    Used by replay's run: with the default thresholds the collector walked the batches
    in flight about a sixth of the run's time (benchmarks/replay.py).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*BULK_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
