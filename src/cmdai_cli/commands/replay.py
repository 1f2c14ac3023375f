"""`cmdai replay`: resend recorded events to Segment, the webhook, or bulk-identify."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, finish, resolve_settings
from cmdai_cli.commands._options import (
    RECORD_BYTES,
    FilesArg,
    MappingOpt,
    MaxRecordBytesOpt,
    OnErrorName,
    TimeoutOpt,
    event_files,
)
from cmdai_cli.commands._replay_progress import replay_progress
from cmdai_cli.commands._replay_summary import render


class To(str, Enum):
    segment = "segment"
    webhook = "webhook"
    bulk_identify = "bulk-identify"


HELP = """Resend recorded events to Segment, the Command AI webhook, or bulk-identify.

Reads the FILEs in order (or stdin, also '-'): NDJSON, JSON arrays, .gz, directories and
glob patterns, the files `cmdai listen --out` writes, and this command's own reject and
dead-letter files. URLs are read as streams from object storage: s3:// (install
cmdai[s3]; the endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL), gs://
(cmdai[gcs]) and any other fsspec filesystem; a prefix stands for every object under
it. Given Segment's S3 archive (segment-logs/SOURCE/DAY/*.gz), --since skips whole day
folders unread.

--shard K/N splits a run over N machines: with several input files each shard reads
only the files whose path hashes to it; a single input is read whole by every shard
and split by messageId. --shard auto/N takes K from JOB_COMPLETION_INDEX + 1, as a
Kubernetes Indexed Job sets it; --rate is then the total for all N shards.

--to segment: batches to the Segment host (profile or --host) through
segment-analytics-python, each event kept as recorded; an event without a messageId
gets one derived from its content, so running twice is deduplicated by Segment.
--to webhook: the body built by the webhook mapping, signed with X-Signature (hex
HMAC-SHA1) when the profile has a shared secret; --batch-size sends JSON arrays.
--to bulk-identify: Command AI's recording rules, merged per user, POSTed to
{api_host}/api/{org_id}/bulk-identify/.

Progress is checkpointed after every acknowledged batch: after a crash, kill or
Ctrl-C, run the same command with --resume. --resume needs files or objects: stdin
cannot be checked against the checkpoint, so save it to a file to be able to resume.
Without --resume a replay starts over, with a warning when its checkpoint shows it done
before: Segment drops events whose messageId it has seen, the webhook and bulk-identify
take them again. Ctrl-C (or SIGTERM) stops within about a second, leaving what was in
flight pending; a second Ctrl-C stops at once. An endpoint that looks down stops the
run with exit 6: 8 requests in a row across the pool without an answer (timed out,
refused, reset), or 32 with 5xx answers (or 429s asking for a longer wait than
--max-wait allows) among them, reaching back at least twice
--timeout (30 s at most), with no other answer between; everything not acknowledged
is left pending for --resume. A wait the server asks for (Retry-After, a rate limit's
reset) is cut to --max-wait, and to 30 s, with a warning. Events that cannot be delivered go to
the dead-letter file, unsendable ones to the reject file (a line holds the event when
it could be read, and replaying the file sends those again).
Otherwise, when any event was not delivered the exit code is 5 if the service refused some (a
4xx, or 429 until the retries ran out), else 6 if it could not be reached, timed out or
kept answering 5xx, else 1. A dry run reads and checks as the run would: with
--on-error fail (the default) a bad record stops it with exit 4, with --on-error skip
it exits 1 when some events would be rejected; else 0.
In --json, retry_wait_s is the total time requests spent waiting for retries, summed
over requests (so it can exceed elapsed).
"""


def register(app: typer.Typer) -> None:
    command(app, "replay", help=HELP)(replay)


def replay(
    files: FilesArg = None,
    to: Annotated[
        To,
        typer.Option("--to", help="Where to send: segment, webhook or bulk-identify."),
    ] = ...,  # type: ignore[assignment]
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Segment host for --to segment, or Command AI API host for --to "
            "bulk-identify (default: the profile's).",
            show_default=False,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Webhook URL (default: the profile's webhook_url).", show_default=False
        ),
    ] = None,
    mapping_file: MappingOpt = None,
    org_id: Annotated[
        str | None,
        typer.Option(
            "--org-id", help="Command AI organization id (bulk-identify).", show_default=False
        ),
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="Only events of this type (repeat, or comma-separate).",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--event", help="Only track events with this name (repeat).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only events with timestamp at or after this ISO-8601 time (in Segment's "
            "S3 archive, day folders received before it are not read at all).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Only events with timestamp before this ISO-8601 time (every archive "
            "day folder is still read: events arrive late, so any later day may hold some).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Stop after this many selected events.", show_default=False),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Take share K of N (1 <= K <= N), so N runs split the input: whole files "
            "by a hash of their path, or by messageId when there is one input. auto/N: K "
            "is JOB_COMPLETION_INDEX + 1 (a Kubernetes Indexed Job).",
            show_default=False,
        ),
    ] = None,
    on_error: Annotated[
        OnErrorName,
        typer.Option(
            "--on-error",
            help="On a bad record: fail (stop, exit 4, after sending every earlier event) "
            "or skip (write it to the reject file and go on).",
        ),
    ] = OnErrorName.fail,
    max_record_bytes: MaxRecordBytesOpt = RECORD_BYTES,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help="Events per request (segment: up to 2500, default as many as fit in 500 KB; "
            "webhook: send JSON arrays of N; bulk-identify: users per request, default 100).",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            help="Most requests in flight at once (default 128; segment: 4, sent from a "
            "worker process on Linux, so that encoding runs beside reading). The limit "
            "starts lower and adapts: up while answers come back clean, down on 429, 503 "
            "and time-outs.",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="At most this many events per second (with --shard, in all N shards "
            "together: each takes 1/N).",
            show_default=False,
        ),
    ] = None,
    max_retries: Annotated[
        int, typer.Option("--max-retries", help="Retries per request before giving up.")
    ] = 5,
    max_wait: Annotated[
        float,
        typer.Option("--max-wait", help="Seconds a request may spend waiting between retries."),
    ] = 120.0,
    backoff: Annotated[
        float,
        typer.Option("--backoff", help="First retry's backoff ceiling in seconds (doubles)."),
    ] = 0.5,
    timeout: TimeoutOpt = 15.0,
    gzip: Annotated[
        bool,
        typer.Option(
            "--gzip/--no-gzip",
            help="Compress Segment batches (worth it on slow links; costs CPU).",
        ),
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Checkpoint file (default: one in the state directory, keyed by the inputs).",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue from the checkpoint instead of starting over (not with stdin: "
            "save it to a file first).",
        ),
    ] = False,
    dead_letter: Annotated[
        Path | None,
        typer.Option(
            "--dead-letter",
            help="NDJSON file for events that failed for good (default: in the state directory).",
            show_default=False,
        ),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="NDJSON file for bad and unsendable records (default: in the state directory).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read, validate, map and count; send and write nothing. With --resume, "
            "checks the checkpoint as the run would. Exits 1 when events would be rejected.",
        ),
    ] = False,
) -> None:
    # Imported here: the run loads the Segment library, httpx and the mapping rules,
    # about 200 ms (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.replay.options import ReplayOptions
    from cmdai_cli.replay.run import replay as run_replay
    from cmdai_cli.replay.select import Filters, parse_shard

    options = ReplayOptions(
        inputs=event_files(files),
        to=to.value,
        host=host,
        url=url,
        mapping_file=mapping_file,
        filters=Filters.build(types or (), events or (), since, until),
        shard=parse_shard(shard) if shard else None,
        limit=limit,
        on_error=on_error.value,
        max_record_bytes=max_record_bytes,
        batch_size=batch_size,
        concurrency=concurrency,
        rate=rate,
        max_retries=max_retries,
        max_wait=max_wait,
        backoff=backoff,
        timeout=timeout,
        gzip=gzip,
        checkpoint=checkpoint,
        resume=resume,
        dead_letter=dead_letter,
        rejects=rejects,
        dry_run=dry_run,
    )
    settings = resolve_settings({"org_id": org_id})
    show = output.is_terminal(sys.stderr) and not STATE.json
    with replay_progress(show) as on_progress:
        result = run_replay(options, settings, on_progress=on_progress, warn=output.warn)
    finish(result, render)
