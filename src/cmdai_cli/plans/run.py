"""Validating a stream of events: each violation handed out as found, and a summary.

Only counters are kept, so memory does not grow with the input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cmdai_cli.plans.check import Validator, Violation, event_label


class _Event(Protocol):
    """What the stream reader hands out for each event (`events.records.Event`)."""

    @property
    def position(self) -> int: ...

    @property
    def value(self) -> dict[str, Any]: ...


@dataclass
class Summary:
    """How many events were checked, and the violations by event and kind."""

    events: int = 0
    failed: int = 0
    violations: int = 0
    by_event: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, event: str, found: list[Violation]) -> None:
        self.failed += 1
        self.violations += len(found)
        for violation in found:
            self.by_event[(event, violation.kind)] += 1

    def rows(self) -> list[tuple[str, str, int]]:
        """(event, kind, count), most frequent first."""
        ordered = sorted(self.by_event.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(event, kind, count) for (event, kind), count in ordered]

    def as_json(self) -> dict[str, Any]:
        by_event: dict[str, dict[str, int]] = {}
        for event, kind, count in self.rows():
            by_event.setdefault(event, {})[kind] = count
        return {
            "events": self.events,
            "events_with_violations": self.failed,
            "violations": self.violations,
            "by_event": by_event,
        }


Emit = Callable[[int, str, Violation], None]


def validate_stream(
    batches: Iterable[list[Any]], validator: Validator, emit: Emit, summary: Summary
) -> Summary:
    """Check every event of `batches` (lists of `events.records.Event`), in order.

    `emit(index, event, violation)` is called for each violation as it is found.
    """
    check = validator.check
    for batch in batches:
        summary.events += len(batch)
        for event in batch:
            found = check(event.value)
            if found:
                label = event_label(event.value)
                summary.add(label, found)
                for violation in found:
                    emit(event.position, label, violation)
    return summary
