"""The progress bar `cmdai replay` shows on a terminal (rich, loaded only when shown)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from cmdai_cli import output

if TYPE_CHECKING:
    from cmdai_cli.replay import Progress


@contextlib.contextmanager
def replay_progress(show: bool) -> Iterator[Callable[[Progress], None] | None]:
    if not show:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("replay"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn(
            "sent {task.fields[sent]} retries {task.fields[retries]} "
            "failed {task.fields[failed]} rejected {task.fields[rejected]}"
        ),
        console=output.console(stderr=True),
        transient=True,
    )
    task = bar.add_task("replay", total=None, sent=0, retries=0, failed=0, rejected=0, rate=0)

    def update(snapshot: Progress) -> None:
        total = snapshot.total if snapshot.total and snapshot.total >= snapshot.read else None
        elapsed = bar.tasks[0].elapsed or 0.0
        rate = f"{snapshot.sent / elapsed:,.0f}" if elapsed > 0 else "-"
        bar.update(
            task,
            completed=snapshot.read,
            total=total,
            sent=snapshot.sent,
            retries=snapshot.retries,
            failed=snapshot.failed,
            rejected=snapshot.rejected,
            rate=rate,
        )

    with bar:
        yield update
