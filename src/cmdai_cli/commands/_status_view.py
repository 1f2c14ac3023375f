"""How `cmdai status` looks: sparklines, a volume chart, a delivery funnel, drawn with Rich.

Readable at 80 columns. Plain (ASCII, no colour) under NO_COLOR or when stdout is not a
terminal, so that a log or a pipe gets the same picture in characters any viewer shows.
"""

from __future__ import annotations

import os
import textwrap
from datetime import datetime

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cmdai_cli import output, redact
from cmdai_cli.workspace.status import DEVICE_MODE_NOTE, StatusResult

BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_LEVELS = "_.-:=+*#"
SPARK_WIDTH = 24
CHART_HEIGHT = 5
MARKS = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
STEP_LABELS = {
    "successfully-received": "received by Segment",
    "failed-on-ingest": "failed on ingest",
    "filtered-at-source": "filtered at source",
    "filtered-at-destination": "filtered at destination",
    "failed-delivery": "failed delivery",
    "successful-delivery": "delivered",
}


def plain() -> bool:
    """ASCII and no colour: NO_COLOR is set, or stdout is not a terminal."""
    return bool(os.environ.get("NO_COLOR")) or not output.is_terminal()


def bins(counts: list[int], width: int) -> list[int]:
    """`counts` summed into at most `width` bins of (nearly) equal length, in order."""
    if len(counts) <= width:
        return list(counts)
    edges = [round(i * len(counts) / width) for i in range(width + 1)]
    return [sum(counts[edges[i] : edges[i + 1]]) for i in range(width)]


def sparkline(counts: list[int], width: int = SPARK_WIDTH, *, ascii_only: bool) -> str:
    """One character per bin; an empty bin is a space, so silence shows as a gap."""
    levels = ASCII_LEVELS if ascii_only else BLOCKS
    values = bins(counts, width)
    top = max(values, default=0)
    if top == 0:
        return " " * len(values)
    return "".join(
        " " if v == 0 else levels[min(len(levels) - 1, (v * len(levels) - 1) // top)]
        for v in values
    )


def chart(
    counts: list[int], width: int, height: int = CHART_HEIGHT, *, ascii_only: bool
) -> list[str]:
    """Bar chart rows, top first, each `width` characters or fewer (no axis)."""
    values = bins(counts, width)
    # Few buckets are drawn wider, so that a day of hours still fills the line.
    values = [v for v in values for _ in range(max(1, width // max(1, len(values))))]
    top = max(values, default=0)
    rows = []
    for row in range(height, 0, -1):
        line = []
        for v in values:
            # Height of this bar in eighths of a row.
            eighths = 0 if top == 0 else round(v * height * 8 / top)
            if v and not eighths:
                eighths = 1
            full = eighths - (row - 1) * 8
            if full >= 8:
                line.append("#" if ascii_only else "█")
            elif full > 0:
                line.append(("." if full < 4 else "#") if ascii_only else BLOCKS[full - 1])
            else:
                line.append(" ")
        rows.append("".join(line))
    return rows


def cell(value: object) -> Text:
    """A value from outside as plain text: no markup, control characters shown as `?`."""
    text = redact.scrub(str(value))
    return Text("".join(ch if ch.isprintable() else "?" for ch in text))


def short_time(text: str | None) -> str:
    if not text:
        return "-"
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return text
    return moment.strftime("%m-%d %H:%M")


def _table(ascii_only: bool, *columns: str) -> Table:
    table = Table(
        box=box.ASCII2 if ascii_only else box.SIMPLE_HEAD,
        show_edge=False,
        header_style="" if ascii_only else "bold",
        pad_edge=False,
    )
    for column in columns:
        right = column in ("total", "count")
        table.add_column(column, justify="right" if right else "left", no_wrap=column != "problems")
    return table


def view(
    result: StatusResult, width: int, ascii_only: bool | None = None, *, verdict_first: bool = False
) -> RenderableType:
    """The whole picture; `ascii_only` defaults to `plain()`. `verdict_first` puts the
    checks on top, for a redraw that the terminal's height may cut at the bottom."""
    ascii_only = plain() if ascii_only is None else ascii_only
    parts: list[RenderableType] = []
    if verdict_first:
        parts += [*_checks(result, ascii_only)[1:], Text("")]
    source = result.source
    window = result.window
    head = cell(
        f"source {source.get('slug') or source.get('id')} "
        f"({source.get('name')}), {short_time(window.as_json()['start'])} to "
        f"{short_time(window.as_json()['end'])} UTC, by {window.granularity}"
    )
    if not ascii_only:
        head.stylize("bold")
    parts.append(head)
    parts += _volume(result, width, ascii_only)
    parts += _destinations(result, ascii_only)
    parts += _delivery(result, width, ascii_only)
    parts += _filters(result, ascii_only)
    if not verdict_first:
        parts += _checks(result, ascii_only)
    return Group(*parts)


def _section(title: str, ascii_only: bool) -> Text:
    return Text("\n" + title, style="" if ascii_only else "bold underline")


def _volume(result: StatusResult, width: int, ascii_only: bool) -> list[RenderableType]:
    parts: list[RenderableType] = [
        _section(f"Source in (Command AI -> Segment): {result.total} events", ascii_only)
    ]
    series = result.series()
    counts = [count for _, count in series]
    if result.events:
        table = _table(ascii_only, "event", "total", "over the window", "last seen")
        for event in result.events:
            by_time = {p.time: p.count for p in event.series}
            line = [by_time.get(time, 0) for time, _ in series]
            table.add_row(
                cell(event.name[:28]),
                str(event.total),
                sparkline(line, ascii_only=ascii_only),
                short_time(event.last_seen),
            )
        parts.append(table)
    else:
        parts.append(Text("no events reached the source in the window"))
    if result.missing:
        parts.append(Text(textwrap.fill("not seen: " + ", ".join(result.missing), width)))
    if result.unknown:
        names = cell(", ".join(result.unknown)).plain
        text = "not Command AI's (a typo or a custom event): " + names
        parts.append(Text(textwrap.fill(text, width)))
    label = max(len(str(max(counts, default=0))), 1)
    chart_width = max(10, width - label - 3)
    rows = chart(counts, chart_width, ascii_only=ascii_only)
    lines = []
    for i, row in enumerate(rows):
        tag = str(max(counts, default=0)) if i == 0 else ("0" if i == len(rows) - 1 else "")
        lines.append(f"{tag:>{label}} |{row}")
    drawn = len(rows[0]) if rows else chart_width
    start = short_time(series[0][0]) if series else ""
    end = short_time(result.window.as_json()["end"])
    lines.append(f"{'':>{label}} +{'-' * drawn}")
    lines.append(f"{'':>{label}}  {start}{end:>{max(0, drawn - len(start))}}")
    parts.append(Text("\nvolume per " + result.window.granularity))
    parts.append(Text("\n".join(lines), no_wrap=True))
    return parts


def _destinations(result: StatusResult, ascii_only: bool) -> list[RenderableType]:
    parts: list[RenderableType] = [_section("Destinations on the source", ascii_only)]
    if not result.destinations:
        parts.append(Text("none"))
        return parts
    table = _table(ascii_only, "destination", "kind", "enabled", "problems")
    for state in result.destinations:
        d = state.destination
        table.add_row(
            cell(f"{d.name} ({d.id})"),
            d.kind,
            "yes" if d.enabled else "no",
            cell("; ".join(state.problems) or "-"),
        )
    parts.append(table)
    return parts


def _delivery(result: StatusResult, width: int, ascii_only: bool) -> list[RenderableType]:
    parts: list[RenderableType] = [_section("Delivery (Segment -> Command AI webhook)", ascii_only)]
    delivery = result.delivery
    if delivery is None:
        skipped = next(c for c in result.checks if c.name == "delivery")
        parts.append(cell(skipped.detail))
    else:
        top = max((step.total for step in delivery.steps.values()), default=0)
        bar_width = max(10, min(30, width - 40))
        table = _table(ascii_only, "step", "count", "")
        for name, step in delivery.steps.items():
            filled = 0 if top == 0 else max(1 if step.total else 0, step.total * bar_width // top)
            table.add_row(STEP_LABELS[name], str(step.total), ("#" if ascii_only else "█") * filled)
        parts.append(table)
        if delivery.failures:
            reasons = ", ".join(f"{reason} {count}" for reason, count in delivery.failures.items())
            parts.append(cell(f"failures by reason: {reasons}"))
        parts.append(
            Text(
                f"failure rate {delivery.failure_rate:.1%}; "
                f"{delivery.retried} delivered after retries"
            )
        )
    note = textwrap.fill(DEVICE_MODE_NOTE, width=max(40, width))
    parts.append(Text(note, style="" if ascii_only else "dim"))
    return parts


def _filters(result: StatusResult, ascii_only: bool) -> list[RenderableType]:
    parts: list[RenderableType] = [_section("Destination filters", ascii_only)]
    if not result.filters:
        parts.append(Text("none"))
        return parts
    table = _table(ascii_only, "filter", "destination", "enabled", "identify")
    for state in result.filters:
        rule = state.filter
        table.add_row(
            cell(rule.title or rule.id),
            cell(rule.destination_id),
            "yes" if rule.enabled else "no",
            "DROPPED" if state.drops_identify else "passes",
        )
    parts.append(table)
    return parts


def _checks(result: StatusResult, ascii_only: bool) -> list[RenderableType]:
    parts: list[RenderableType] = [Text("")]
    width = max(len(check.name) for check in result.checks)
    colours = {"pass": "green", "fail": "red", "skip": "yellow"}
    for check in result.checks:
        line = Text(f"{MARKS[check.status]}  ", style="" if ascii_only else colours[check.status])
        line.append(f"{check.name:<{width}}  ")
        line.append_text(cell(check.detail))
        parts.append(line)
    failed = [check for check in result.checks if check.status == "fail"]
    if failed:
        verdict = f"NOT HEALTHY: {len(failed)} of {len(result.checks)} checks failed"
    else:
        verdict = "HEALTHY: events arrive and nothing on the way to Command AI stops them"
    parts.append(
        Text(verdict, style="" if ascii_only else ("bold red" if failed else "bold green"))
    )
    return parts
