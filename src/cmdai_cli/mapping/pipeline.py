"""A stream of events through a target: read -> map -> write, with its counts.

What `cmdai map-payload` runs. The per-event work is one mapper call and one write;
everything that can be decided once (the mapping, the mapper, the inputs) is decided
before the first event is read, so a bad argument fails before any output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cmdai_cli import _speed
from cmdai_cli.errors import ExitCode
from cmdai_cli.events.inputs import expand_inputs
from cmdai_cli.events.reader import read_batches
from cmdai_cli.events.records import DEFAULT_MAX_RECORD_BYTES, BadRecord, ErrorPolicy, OnError
from cmdai_cli.mapping import Mapped
from cmdai_cli.mapping.destination import map_destination
from cmdai_cli.mapping.file import resolve_mapping
from cmdai_cli.mapping.webhook import RECOMMENDED, WebhookMapping, map_webhook, record_properties
from cmdai_cli.profile import Resolved

__all__ = [
    "MapRequest",
    "MapResult",
    "Mapper",
    "Target",
    "Write",
    "make_mapper",
    "map_events",
    "map_stream",
]

Target = Literal["webhook", "destination"]
Mapper = Callable[[Any], Mapped]
Write = Callable[[int, dict[str, Any]], None]
"""Writes one record with its index; may raise TypeError for a record it cannot encode."""


def make_mapper(
    target: Target = "webhook",
    mapping: WebhookMapping = RECOMMENDED,
    *,
    deploy: bool = False,
    explain: bool = False,
) -> Mapper:
    """A one-argument function event -> (record, problem) for `target`, built once."""
    if target == "destination":

        def destination(event: Any) -> Mapped:
            return map_destination(event, deploy=deploy, explain=explain)

        return destination
    if target != "webhook":
        raise ValueError(f"unknown target {target!r}")
    if mapping.whole_event and not explain:
        # The common case, kept to one call per event.
        return record_properties

    def webhook(event: Any) -> Mapped:
        return map_webhook(event, mapping, explain=explain)

    return webhook


@dataclass(frozen=True)
class MapRequest:
    """What `map-payload` maps: the inputs (`events.inputs` specs; none: stdin), the run's
    resolved settings (their `mapping` and `deploy_via_segment`), the target, and what a
    bad record does."""

    settings: Resolved
    files: Sequence[str] = ()
    target: Target = "webhook"
    mapping_file: str | Path | None = None
    explain: bool = False
    on_error: OnError = "fail"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


@dataclass
class MapResult:
    """What a run over a stream came to."""

    recorded: int = 0
    ignored: dict[str, int] = field(default_factory=dict)  # reason -> events
    errors: Counter[str] = field(default_factory=Counter)  # reason -> bad records

    @property
    def ignored_total(self) -> int:
        return sum(self.ignored.values())

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    @property
    def events(self) -> int:
        return self.recorded + self.ignored_total + self.errors_total

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "recorded": self.recorded,
            "ignored": dict(self.ignored),
            "errors": dict(self.errors),
        }

    @property
    def exit_code(self) -> ExitCode:
        # A bad record stops the run with DataError under `fail`; skipped ones are counted.
        return ExitCode.OK

    @property
    def problem(self) -> str | None:
        return None


def map_events(
    request: MapRequest,
    open_output: Callable[[], Write],
    *,
    report: Callable[[BadRecord], None] | None = None,
    result: MapResult | None = None,
) -> MapResult:
    """Read the request's inputs, map every event for its target, write each record.

    `open_output()` is called once everything is checked, just before reading starts,
    and returns the function that writes `(index, record)`; a bad mapping or a missing
    input raises before it is called. Bad records (unreadable, unmappable or
    unwritable) follow `on_error`: `fail` raises DataError after every earlier record
    is written, `skip` hands each to `report` and goes on. The counts go to `result` (a
    new one by default) as the run goes, so a caller can sum up a run that raised.
    """
    settings, target = request.settings, request.target
    rules = resolve_mapping(request.mapping_file, settings) if target == "webhook" else RECOMMENDED
    mapper = make_mapper(
        target, rules, deploy=bool(settings.get("deploy_via_segment")), explain=request.explain
    )
    inputs = expand_inputs(request.files)
    result = result if result is not None else MapResult()
    # One counter for every bad record, whether the reader or the mapper found it.
    policy = ErrorPolicy(request.on_error, report=report, reasons=result.errors)

    def on_problem(position: int, source: str, line: int | None, reason: str) -> None:
        policy(BadRecord(position, source, line, reason))

    write = open_output()
    batches = read_batches(inputs, on_error=policy, max_record_bytes=request.max_record_bytes)
    with _speed.paused_collector():
        map_stream(batches, mapper, write, on_problem, result)
    return result


def map_stream(
    batches: Iterable[Iterable[tuple[Any, ...]]],
    mapper: Mapper,
    write: Write,
    on_problem: Callable[[int, str, int | None, str], None],
    result: MapResult | None = None,
) -> MapResult:
    """Map every event of `batches` and `write(index, record)` each record, in order.

    Each item of a batch starts `(position, source, line, event, ...)` (as
    `events.records.Event` does). A bad event goes to `on_problem(position, source,
    line, reason)` instead, which may raise to stop; so may `write`. A record `write`
    cannot serialise (a TypeError, as JSON encoders raise for values nested too deeply)
    is a bad event too. Recorded and ignored events are counted in `result` (a new one
    by default) as the run goes, so the counts are there even when the run is stopped
    by an exception; bad events are counted by `on_problem`'s owner (see `map_events`).
    """
    result = result if result is not None else MapResult()
    ignored = result.ignored
    for batch in batches:
        recorded = 0
        try:
            for item in batch:
                record, problem = mapper(item[3])
                if record is None:
                    on_problem(item[0], item[1], item[2], problem or "bad event")
                    continue
                try:
                    write(item[0], record)
                except TypeError as exc:
                    on_problem(item[0], item[1], item[2], f"output cannot be written: {exc}")
                    continue
                reason = record["ignored"]
                if reason is None:
                    recorded += 1
                else:
                    ignored[reason] = ignored.get(reason, 0) + 1
        finally:
            result.recorded += recorded
    return result
