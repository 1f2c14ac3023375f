"""Replay's result for people: its summary lines, on stderr (stdout stays for data)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmdai_cli import output

if TYPE_CHECKING:
    from cmdai_cli.replay.result import ReplayResult


def render(result: ReplayResult) -> None:
    for line in summary_lines(result):
        output.info(line)


def summary_lines(result: ReplayResult) -> list[str]:
    """The human summary."""
    s = result
    rate = s.sent / s.elapsed if s.elapsed > 0 else 0.0
    verb = "would be sent" if s.dry_run else "sent"
    count = s.would_send if s.dry_run else s.sent
    head = (
        f"replay to {s.target} ({s.destination}): {s.read} read, {count} {verb}, "
        f"{s.skipped} skipped, {s.rejected} rejected, {s.failed} failed, "
        f"{s.retries} retries in {s.elapsed:.1f}s"
    )
    if not s.dry_run and s.sent:
        head += f" ({rate:,.0f} events/s)"
    out = [head]
    if s.skipped:
        parts = [
            f"{n} {what}"
            for n, what in (
                (s.filtered, "not selected"),
                (s.already_done, "done in an earlier run"),
                (s.ignored, "with nothing to record"),
            )
            if n
        ]
        out.append("  skipped: " + ", ".join(parts))
    if s.rejected:
        where = f", written to {s.rejects}" if s.rejects else ""
        if s.dry_run:
            where = " (a dry run writes no reject file)"
        out.append(f"  rejected: {s.rejected} that cannot be sent as they are{where}")
        out.extend(f"    {reason}: {n}" for reason, n in _top(s.rejected_reasons))
    if s.failed:
        out.append(
            f"  failed: {s.failed} not delivered, written to {s.dead_letter} "
            "(fix the cause, then replay that file)"
        )
        out.extend(f"    {reason}: {n}" for reason, n in _top(s.failed_reasons))
    if s.failed_before or s.rejected_before:
        out.append(
            f"  earlier runs of this checkpoint: {s.failed_before} failed, "
            f"{s.rejected_before} rejected (still in their dead-letter and reject files)"
        )
    if s.pending:
        out.append(
            f"  pending: {s.pending} not yet acknowledged; run the same command with "
            "--resume to send them"
        )
    if s.shard_by == "file":
        out.append(
            f"  shard {s.shard} by file: {s.reading.files} files, {s.reading.bytes:,} bytes read"
        )
    elif s.shard_by == "messageId":
        out.append(
            f"  shard {s.shard} by messageId: a single input, so every shard reads all of it "
            "(give several files to split them instead)"
        )
    if s.checkpoint and not s.dry_run:
        out.append(f"  checkpoint: {s.checkpoint}")
    return out


def _top(reasons: dict[str, int], n: int = 5) -> list[tuple[str, int]]:
    return sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
