"""`cmdai validate`: check a stream of Segment events against a tracking plan."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command
from cmdai_cli.commands._inputs import RECORD_BYTES, FilesArg, MaxRecordBytesOpt, OnErrorName
from cmdai_cli.printable import printable

if TYPE_CHECKING:
    from cmdai_cli.events.records import ErrorPolicy
    from cmdai_cli.plans import Plan, Summary, Violation

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
    from cmdai_cli import plans
    from cmdai_cli._speed import paused_collector
    from cmdai_cli.events.inputs import expand_inputs
    from cmdai_cli.events.reader import read_batches
    from cmdai_cli.events.records import BadRecord, ErrorPolicy

    plan = plans.load_plan(plan_file) if plan_file is not None else plans.builtin_plan()
    validator = plans.Validator(plan)
    inputs = expand_inputs(files or [])

    def report(bad: BadRecord) -> None:
        where = bad.source + (f":{bad.line}" if bad.line is not None else "")
        output.warn(f"{where}: skipped record {bad.position}: {bad.reason}")

    policy = ErrorPolicy(on_error.value, report=report)
    summary = plans.Summary()
    sys.stdout.flush()
    sink = _JsonSink() if STATE.json else _TextSink()
    try:
        batches = read_batches(inputs, on_error=policy, max_record_bytes=max_record_bytes)
        with paused_collector():
            plans.validate_stream(batches, validator, sink.write, summary)
        sink.finish(summary)
    except BrokenPipeError:
        _quiet_stdout()
        return
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            _quiet_stdout()
        _summary(summary, policy, plan)
    if summary.violations:
        raise typer.Exit(1)


class _TextSink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, index: int, event: str, violation: Violation) -> None:
        from cmdai_cli.plans import KINDS

        at = violation.pointer or "/"
        line = f"#{index} {event}: {KINDS[violation.kind]} at {at}: {violation.message}"
        self.lines.append(printable(line) + "\n")
        if len(self.lines) >= 512:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            sys.stdout.write("".join(self.lines))
            self.lines = []
        sys.stdout.flush()

    def finish(self, summary: Summary) -> None:
        pass

    def close(self) -> None:
        self.flush()


class _JsonSink:
    def __init__(self) -> None:
        from cmdai_cli.events.writers import NdjsonWriter

        self.writer = NdjsonWriter(sys.stdout.buffer)

    def write(self, index: int, event: str, violation: Violation) -> None:
        record: dict[str, Any] = {"event": event, **violation.as_json()}
        self.writer.write_indexed(index, record)

    def finish(self, summary: Summary) -> None:
        import orjson

        self.writer.flush()
        record = {"summary": summary.as_json()}
        sys.stdout.buffer.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        self.writer.close()


def _quiet_stdout() -> None:
    # The reader went away (`| head`): say nothing more on stdout, and let exit be clean.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _summary(summary: Summary, policy: ErrorPolicy, plan: Plan) -> None:
    from cmdai_cli.plans import KINDS

    errors = sum(policy.reasons.values())
    output.info(
        f"validate: {summary.events} event{'s' if summary.events != 1 else ''} against "
        f"'{plan.name}' ({len(plan.rules)} rules): {summary.failed} with violations, "
        f"{summary.violations} violation{'s' if summary.violations != 1 else ''}, "
        f"{errors} error{'s' if errors != 1 else ''}"
    )
    for event, kind, count in summary.rows():
        output.info(f"  {event}: {KINDS[kind]}: {count}")
    for reason, count in sorted(policy.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        output.info(f"  error: {reason}: {count}")
