"""`cmdai map-payload`: what Command AI records from a stream of Segment events."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import (
    STATE,
    command,
    finish,
    resolve_settings,
    stream,
)
from cmdai_cli.commands._options import (
    RECORD_BYTES,
    FilesArg,
    MappingOpt,
    MaxRecordBytesOpt,
    OnErrorName,
    event_files,
    report_bad_record,
)
from cmdai_cli.values import plural

if TYPE_CHECKING:
    from cmdai_cli.mapping.pipeline import MapResult, Write


class TargetName(str, Enum):
    webhook = "webhook"
    destination = "destination"


class FormatName(str, Enum):
    ndjson = "ndjson"
    json = "json"
    table = "table"


HELP = """Show what Command AI records from Segment events, one record per event.

Reads the FILEs in order (or stdin, also '-'): NDJSON, a JSON array, one object, or
JSON values one after another; .gz is read transparently. Directories and glob
patterns are expanded. URLs are read as streams from object storage: s3:// (install
cmdai[s3]; the endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL), gs:// (cmdai[gcs])
and any other fsspec filesystem; a prefix stands for every object under it.

--target webhook (default): the Segment Webhooks destination builds a body with the
mapping ('$.path' or a literal per body field; none means the whole event), then
Command AI records user properties: every field of traits, every body field
user_property.<name> as <name>, and user_property_event as a boolean property set to
true. A body without userId is ignored. When two rules set the same property, the
more specific one wins: user_property.<name>, then user_property_event, then traits.

--target destination: the Command AI SDK call the Command AI destination makes, as its
code makes it: identify -> boot (deploy on) or addMetadataBatch (deploy off), also
without a userId; track -> trackEvent when the event name is truthy; anything else
makes no call. A falsy traits or properties becomes {}; hmac and formFactor are passed
to boot only when truthy.

Output on stdout, in input order, each record with its 0-based index across all
inputs: NDJSON when piped, a table on a terminal. A summary goes to stderr.
"""


def register(app: typer.Typer) -> None:
    command(app, "map-payload", help=HELP)(map_payload)


def map_payload(
    files: FilesArg = None,
    target: Annotated[
        TargetName,
        typer.Option("--target", help="What to emulate: the webhook, or the destination."),
    ] = TargetName.webhook,
    mapping_file: MappingOpt = None,
    deploy: Annotated[
        bool | None,
        typer.Option(
            "--deploy/--no-deploy",
            help="Destination 'Deploy via Segment' setting "
            "(default: the profile's deploy_via_segment).",
            show_default=False,
        ),
    ] = None,
    on_error: Annotated[
        OnErrorName,
        typer.Option(
            "--on-error",
            help="On a bad record: fail (stop, exit 4, after writing every earlier record) "
            "or skip (report it on stderr and go on).",
        ),
    ] = OnErrorName.fail,
    max_record_bytes: MaxRecordBytesOpt = RECORD_BYTES,
    fmt: Annotated[
        FormatName | None,
        typer.Option(
            "--format",
            help="ndjson, json (one array) or table (default: table on a terminal, "
            "else ndjson; json with --json).",
            show_default=False,
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Add, per property, the rule and path it came from."),
    ] = False,
) -> None:
    # Imported here: the core loads the event reader and the mapping rules, about 240 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.mapping.pipeline import MapRequest, MapResult, map_events

    request = MapRequest(
        settings=resolve_settings({"deploy_via_segment": deploy}),
        files=event_files(files),
        target=target.value,
        mapping_file=mapping_file,
        explain=explain,
        on_error=on_error.value,
        max_record_bytes=max_record_bytes,
    )
    chosen = fmt.value if fmt else _default_format()
    sink: _Sink | None = None

    def open_output() -> Write:
        nonlocal sink
        sys.stdout.flush()
        opened = sink = _sink(chosen, target, explain)
        return opened.write_indexed

    result = MapResult()
    if stream(
        lambda: map_events(request, open_output, report=report_bad_record, result=result),
        lambda: sink,
        lambda: _summary(result),
    ):
        finish(result, None)


def _default_format() -> str:
    if STATE.json:
        return "json"
    return "table" if output.is_terminal() else "ndjson"


class _TableSink:
    """Rows rendered a page at a time, so a long stream never piles up in memory."""

    PAGE = 500

    def __init__(self, columns: list[str]) -> None:
        # Imported here, as the core is: about 3 ms (python -X importtime) kept off --help
        # and Tab completion. JavaScript's JSON text, so a lone surrogate or Infinity in a
        # value shows as it would there.
        from cmdai_cli.js_json import dumps

        self.dumps = dumps
        self.columns = columns
        self.rows: list[list[Any]] = []

    def write_indexed(self, index: int, record: dict[str, Any]) -> None:
        row: list[Any] = [index]
        for column in self.columns[1:]:
            value = record.get(column)
            if isinstance(value, (dict, list)):
                value = self.dumps(value).decode()
            row.append(value)
        self.rows.append(row)
        if len(self.rows) >= self.PAGE:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            output.table(self.columns, self.rows)
            self.rows = []

    def close(self) -> None:
        self.flush()


class _Sink(Protocol):
    def write_indexed(self, index: int, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _sink(chosen: str, target: TargetName, explain: bool) -> _Sink:
    # Imported here: the writers load orjson, about 4 ms (python -X importtime) kept off
    # --help and Tab completion.
    from cmdai_cli.events.writers import JsonArrayWriter, NdjsonWriter

    if chosen == "table":
        columns = (
            ["index", "userId", "properties", "ignored"]
            if target is TargetName.webhook
            else ["index", "action", "call", "args", "ignored"]
        )
        return _TableSink([*columns, "explain"] if explain else columns)
    stream = sys.stdout.buffer
    if chosen == "json":
        return JsonArrayWriter(stream)
    return NdjsonWriter(stream)


def _summary(result: MapResult) -> None:
    parts = [
        f"{result.events} {plural(result.events, 'event')}",
        f"{result.recorded} recorded",
        f"{result.ignored_total} ignored",
        f"{result.errors_total} {plural(result.errors_total, 'error')}",
    ]
    output.info(f"map-payload: {parts[0]}: " + ", ".join(parts[1:]))
    for reason, count in sorted(result.ignored.items(), key=lambda kv: (-kv[1], kv[0])):
        output.info(f"  ignored: {reason}: {count}")
    for reason, count in sorted(result.errors.items(), key=lambda kv: (-kv[1], kv[0])):
        output.info(f"  error: {reason}: {count}")
