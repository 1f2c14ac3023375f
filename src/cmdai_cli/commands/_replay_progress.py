"""The progress bar `cmdai replay` shows on a terminal (rich, loaded only when shown).

It moves with the records accounted for (acknowledged, failed, rejected or skipped),
refreshed several times a second by the run, so that its rate and ETA follow what the
target acknowledged rather than what was read ahead; it also shows the requests in
flight against the current in-flight limit, and those waiting for a retry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from cmdai_cli import output

if TYPE_CHECKING:
    from cmdai_cli.replay.result import Progress


@contextlib.contextmanager
def replay_progress(
    show: bool, label: str = "replay"
) -> Iterator[Callable[[Progress], None] | None]:
    if not show:
        yield None
        return
    # Imported here: Rich's progress bar costs about 18 ms (python -X importtime) that
    # `replay --help` and `trigger --help`, which load this module, do not need.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn(label),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn(
            "sent {task.fields[sent]} in flight {task.fields[flight]} "
            "retrying {task.fields[waiting]} failed {task.fields[failed]} "
            "rejected {task.fields[rejected]}"
        ),
        console=output.console(stderr=True),
        transient=True,
        refresh_per_second=5,
    )
    task = bar.add_task(
        "replay", total=None, sent=0, flight="0/0", waiting=0, failed=0, rejected=0, rate="-"
    )

    def update(snapshot: Progress) -> None:
        total = snapshot.total if snapshot.total and snapshot.total >= snapshot.read else None
        elapsed = bar.tasks[0].elapsed or 0.0
        rate = f"{snapshot.sent / elapsed:,.0f}" if elapsed > 0 else "-"
        bar.update(
            task,
            completed=snapshot.done,
            total=total,
            sent=snapshot.sent,
            flight=f"{snapshot.in_flight}/{snapshot.limit}",
            waiting=snapshot.waiting,
            failed=snapshot.failed,
            rejected=snapshot.rejected,
            rate=rate,
        )

    with bar:
        yield update
