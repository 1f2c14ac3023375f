"""`cmdai validate`: check a stream of Segment events against a tracking plan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, finish, stream
from cmdai_cli.commands._options import (
    RECORD_BYTES,
    FilesArg,
    MaxRecordBytesOpt,
    OnErrorName,
    event_files,
    report_bad_record,
)
from cmdai_cli.printable import printable
from cmdai_cli.values import plural

if TYPE_CHECKING:
    from cmdai_cli.plans import Violation
    from cmdai_cli.plans.run import Emit, ValidateResult

HELP = """Check Segment events against a tracking plan, and list every violation.

Reads the FILEs in order (or stdin, also '-') as map-payload does: NDJSON, a JSON
array, one object, or JSON values one after another; .gz is read transparently.

The plan is --plan FILE (as `cmdai plan pull` or `cmdai plan show --json` writes it),
else the built-in plan of Command AI's events. A track event needs the plan's rule of
its name; identify, group, page and screen are checked against their rule when the
plan has one. Violation kinds: unplanned_event, required_missing, datatype_mismatch,
additional_properties, invalid_value (outside an enum, pattern or range).

Each violation goes to stdout with the event's 0-based index, its kind and the JSON
pointer of the property (--json: one NDJSON record each, then a {"summary": ...}
record). A summary by event and kind goes to stderr. Exit 1 when there is any
violation, 3 for an unusable plan file, 4 for unreadable input.
"""


def register(app: typer.Typer) -> None:
    command(app, "validate", help=HELP)(validate)


def validate(
    files: FilesArg = None,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Plan file (default: the built-in plan of Command AI's events).",
            show_default=False,
        ),
    ] = None,
    on_error: Annotated[
        OnErrorName,
        typer.Option(
            "--on-error",
            help="On a bad record: fail (stop, exit 4, after checking every earlier event) "
            "or skip (report it on stderr and go on).",
        ),
    ] = OnErrorName.fail,
    max_record_bytes: MaxRecordBytesOpt = RECORD_BYTES,
) -> None:
    # Imported here: the core loads the event reader and the plan checker, about 15 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.plans.run import ValidateRequest, ValidateResult, validate_events

    request = ValidateRequest(
        files=event_files(files),
        plan_file=plan_file,
        on_error=on_error.value,
        max_record_bytes=max_record_bytes,
    )
    result = ValidateResult()
    sink: _TextSink | _JsonSink | None = None

    def open_output() -> Emit:
        nonlocal sink
        sys.stdout.flush()
        opened = sink = _JsonSink() if STATE.json else _TextSink()
        return opened.write

    def run() -> None:
        validate_events(request, open_output, report=report_bad_record, result=result)
        if sink is not None:
            sink.finish(result)

    if stream(run, lambda: sink, lambda: _summary(result)):
        finish(result, None)


class _TextSink:
    def __init__(self) -> None:
        # Imported here, as the core is: the plans package costs about 27 ms (python -X
        # importtime) that --help and Tab completion never need.
        from cmdai_cli.plans import KINDS

        self.kinds = KINDS
        self.lines: list[str] = []

    def write(self, index: int, event: str, violation: Violation) -> None:
        at = violation.pointer or "/"
        line = f"#{index} {event}: {self.kinds[violation.kind]} at {at}: {violation.message}"
        self.lines.append(printable(line) + "\n")
        if len(self.lines) >= 512:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            sys.stdout.write("".join(self.lines))
            self.lines = []
        sys.stdout.flush()

    def finish(self, result: ValidateResult) -> None:
        pass

    def close(self) -> None:
        self.flush()


class _JsonSink:
    def __init__(self) -> None:
        # Imported here, as the core is: the writers (orjson), about 4 ms (python -X
        # importtime), are kept off --help and Tab completion.
        from cmdai_cli.events.writers import NdjsonWriter

        self.writer = NdjsonWriter(sys.stdout.buffer)

    def write(self, index: int, event: str, violation: Violation) -> None:
        record: dict[str, Any] = {"event": event, **violation.as_json()}
        self.writer.write_indexed(index, record)

    def finish(self, result: ValidateResult) -> None:
        # Imported here, as the writers are: about 3 ms (python -X importtime).
        from cmdai_cli.js_json import compact

        self.writer.flush()
        record = {"summary": result.as_json()}
        sys.stdout.buffer.write(compact(record) + b"\n")

    def close(self) -> None:
        self.writer.close()


def _summary(result: ValidateResult) -> None:
    from cmdai_cli.plans import KINDS  # about 27 ms, loaded by the run already; see _TextSink

    errors = sum(result.errors.values())
    output.info(
        f"validate: {result.events} {plural(result.events, 'event')} against "
        f"'{result.plan_name}' ({result.plan_rules} rules): {result.failed} with violations, "
        f"{result.violations} {plural(result.violations, 'violation')}, "
        f"{errors} {plural(errors, 'error')}"
    )
    for event, kind, count in result.rows():
        output.info(f"  {event}: {KINDS[kind]}: {count}")
    for reason, count in sorted(result.errors.items(), key=lambda kv: (-kv[1], kv[0])):
        output.info(f"  error: {reason}: {count}")
