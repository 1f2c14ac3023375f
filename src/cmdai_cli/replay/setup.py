"""What a replay needs before it reads: its inputs, its target, its files, its progress.

The target is built from the flags and the profile (`make_target`); the run's identity
(target, destination, inputs and their versions, selection, shard) keys its checkpoint,
reject and dead-letter files in the state directory unless they are given (`Setup`);
`resume_from` opens the checkpoint, or only reads it for a dry run, and says which
positions are already done.

With `--shard K/N` and several input files, the shard keeps the files whose name
hashes to it and reads nothing else; with one input it reads it all and keeps the
events whose messageId hashes to it. Either way its `--rate` is 1/N of the one given,
so that N shards together keep to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cmdai_cli.errors import ConfigError, UsageError
from cmdai_cli.events.inputs import Input, ReadStats, expand_inputs, read_ahead
from cmdai_cli.events.storage import is_url
from cmdai_cli.mapping.file import resolve_mapping
from cmdai_cli.mapping.webhook import WebhookMapping
from cmdai_cli.profile import Resolved, state_dir
from cmdai_cli.replay.checkpoint import (
    Checkpoint,
    Ranges,
    check_resume,
    done_before,
    fingerprint,
    input_names,
    object_versions,
    run_key,
)
from cmdai_cli.replay.errorlog import ErrorLog
from cmdai_cli.replay.options import ReplayOptions
from cmdai_cli.replay.result import ReplayResult
from cmdai_cli.replay.select import Shard
from cmdai_cli.replay.targets import (
    DEFAULT_BULK_BATCH,
    BulkIdentifyTarget,
    SegmentTarget,
    Target,
    WebhookTarget,
)
from cmdai_cli.segment.messages import MAX_BATCH_MESSAGES
from cmdai_cli.values import check_url, plural

# ---------------------------------------------------------------- the target


def _mapping(options: ReplayOptions, settings: Resolved) -> WebhookMapping:
    """The webhook mapping, resolved as every command resolves it."""
    return resolve_mapping(options.mapping_file, settings)


def make_target(options: ReplayOptions, settings: Resolved) -> Target:
    """The target named by `--to`, from flags and the profile. A dry run needs no secrets."""
    dry = options.dry_run
    size = _batch_size(options)
    if options.to == "segment":
        host = check_url(options.host) if options.host else str(settings.get("segment_host"))
        key = "" if dry else settings.require("write_key", hint="run `cmdai connect` first")
        return SegmentTarget(
            key, host, size, options.timeout, options.gzip, 0 if dry else options.ceiling
        )
    if options.to == "webhook":
        url = options.url or settings.get("webhook_url")
        if url:
            url = check_url(url, what="webhook URL", base=False)
        elif dry:
            url = "https://webhook.invalid"
        else:
            raise ConfigError(
                "no webhook URL: give --url or set webhook_url in the profile",
                hint="Command AI shows the URL in its Segment webhook settings",
            )
        return WebhookTarget(
            url,
            _mapping(options, settings),
            settings.get("webhook_shared_secret") or None,
            size,
            options.timeout,
            options.ceiling,
        )
    if options.to == "bulk-identify":
        api_host = options.host or str(settings.get("commandai_api_host"))
        api_host = check_url(api_host)
        org = settings.get("org_id") or ("ORG" if dry else settings.require("org_id"))
        token = "" if dry else settings.require("commandai_api_token")
        return BulkIdentifyTarget(
            api_host,
            str(org),
            token,
            _mapping(options, settings),
            settings.get("commandai_auth_header"),
            size,
            options.timeout,
            options.ceiling,
        )
    raise UsageError(f"unknown target {options.to!r}")


def _batch_size(options: ReplayOptions) -> int | None:
    """--batch-size, capped at one second's worth under --rate so that sending stays even."""
    size = options.batch_size
    if options.rate is None:
        return size
    cap = max(1, int(options.rate))
    if options.to == "webhook":
        return min(size, cap) if size else None
    default = MAX_BATCH_MESSAGES if options.to == "segment" else DEFAULT_BULK_BATCH
    return min(size or default, cap)


# ---------------------------------------------------------------- files and progress


def default_paths(key: str) -> dict[str, Path]:
    base = state_dir() / "replay"
    return {
        "checkpoint": base / f"{key}.checkpoint",
        "rejects": base / f"{key}.rejects.ndjson",
        "dead_letter": base / f"{key}.dead-letter.ndjson",
    }


def estimate_total(inputs: Sequence[Input]) -> int | None:
    """Lines in the inputs when they are all plain files (for an ETA); else None."""
    total = 0
    for item in inputs:
        if item.path is None:
            return None
        try:
            with open(item.path, "rb") as handle:
                chunk = handle.read(1 << 20)
                if chunk.startswith(b"\x1f\x8b"):
                    return None
                while chunk:
                    total += chunk.count(b"\n")
                    chunk = handle.read(1 << 20)
        except OSError:
            return None
    return total


@dataclass(frozen=True)
class Sharding:
    """This run's share of the input: `by` is "file" or "messageId"."""

    shard: Shard
    by: str


def split(
    options: ReplayOptions, inputs: list[Input]
) -> tuple[ReplayOptions, list[Input], Sharding | None]:
    """The options the run loop goes by, this shard's inputs, and how they were split.

    By file, the run loop has no shard left to apply; by messageId it keeps it. The
    rate is divided in both cases (`shared_rate`).
    """
    shard = options.shard
    if shard is None:
        return options, inputs, None
    options = shared_rate(options)
    if len(inputs) > 1:
        mine = read_ahead([item for item in inputs if shard.owns_file(item.name)])
        return replace(options, shard=None), mine, Sharding(shard, "file")
    return options, inputs, Sharding(shard, "messageId")


def shared_rate(options: ReplayOptions) -> ReplayOptions:
    """A shard's options: 1/N of the rate, so that N shards together keep to it."""
    if options.shard is None or options.rate is None:
        return options
    return replace(options, rate=options.rate / options.shard.count)


@dataclass
class Setup:
    """One run's inputs, target and files. `close_logs` when the run is over.

    `options` are those the run goes by (a shard's rate, no shard left when it is by
    file); `sharding` says what share of the input this run takes, if any.
    """

    options: ReplayOptions
    inputs: list[Input]
    target: Target
    header: dict[str, Any]
    checkpoint_path: Path
    rejects: ErrorLog
    dead: ErrorLog
    sharding: Sharding | None = None
    stats: ReadStats = field(default_factory=ReadStats)

    @classmethod
    def make(cls, options: ReplayOptions, settings: Resolved) -> Setup:
        """Check the options, expand the inputs, build the target; the caller closes it."""
        options.check()
        stats = ReadStats()
        since = options.filters.since
        target = None
        if any(is_url(spec) for spec in options.inputs):
            # Object storage runs a thread of its own from the first listing, and the
            # Segment target's worker can only be forked while no other thread runs.
            target = make_target(shared_rate(options), settings)
        try:
            inputs = (
                []
                if options.source is not None
                else expand_inputs(list(options.inputs), since=since, stats=stats)
            )
            run_options, inputs, sharding = split(options, inputs)
            target = target or make_target(run_options, settings)
            setup = cls._for_target(run_options, inputs, target, options.shard)
        except BaseException:
            if target is not None:
                target.close()  # a Segment target may have started its worker already
            raise
        setup.sharding = sharding
        setup.stats = stats
        return setup

    @classmethod
    def _for_target(
        cls, options: ReplayOptions, inputs: list[Input], target: Target, shard: Shard | None
    ) -> Setup:
        if options.resume and any(item.is_stdin for item in inputs):
            # Stdin leaves nothing to compare with the checkpoint: other events at the
            # same positions would be taken as done, and never sent.
            raise UsageError(
                "--resume cannot be used with stdin: what was read before cannot be checked",
                hint="save the input to a file and replay that file",
            )
        identity: dict[str, Any] = {
            "target": target.name,
            "destination": target.destination,
            "inputs": [options.source.name] if options.source else input_names(inputs),
            "filters": options.filters.as_dict(),
            "shard": str(shard) if shard else None,
            "limit": options.limit,
        }
        objects = object_versions(inputs)
        if objects:
            # A changed object makes another run: its positions are never taken as done.
            identity["objects"] = objects
        key = run_key(identity)
        header = {
            **identity,
            "key": key,
            "files": fingerprint(inputs),
            "created": datetime.now(timezone.utc).isoformat(),
        }
        paths = default_paths(key)
        # A dry run writes nothing: its logs only count.
        dry = options.dry_run
        rejects = ErrorLog(None if dry else options.rejects or paths["rejects"], target.name)
        dead = ErrorLog(None if dry else options.dead_letter or paths["dead_letter"], target.name)
        return cls(
            options,
            inputs,
            target,
            header,
            options.checkpoint or paths["checkpoint"],
            rejects,
            dead,
        )

    def resume_from(
        self, result: ReplayResult, warn: Callable[[str], None] | None = None
    ) -> tuple[Checkpoint | None, Ranges]:
        """The checkpoint to record into (None for a dry run) and the positions done.

        Counts what earlier runs of the checkpoint failed or rejected into `result`,
        and has it report this run's share and what reading costs (as it goes). Without
        --resume, `warn` is told when the checkpoint shows this replay already done:
        re-sending may be meant, but it is then said.
        """
        if self.sharding is not None:
            result.shard = str(self.sharding.shard)
            result.shard_by = self.sharding.by
        result.reading = self.stats
        options = self.options
        if not options.resume:
            self._warn_done_before(warn)
        if options.dry_run:
            if not (options.resume and self.checkpoint_path.exists()):
                return None, Ranges()
            _, pairs, earlier = check_resume(self.checkpoint_path, self.header)
            result.failed_before = earlier["failed"]
            result.rejected_before = earlier["rejected"]
            return None, Ranges(pairs)
        checkpoint = Checkpoint.open(self.checkpoint_path, self.header, resume=options.resume)
        checkpoint.before_write = [self.rejects.sync, self.dead.sync]
        result.failed_before = checkpoint.undelivered["failed"]
        result.rejected_before = checkpoint.undelivered["rejected"]
        return checkpoint, Ranges(checkpoint.done.pairs())

    def _warn_done_before(self, warn: Callable[[str], None] | None) -> None:
        if warn is None or any(item.is_stdin for item in self.inputs):
            return  # stdin cannot be resumed, so pointing at --resume would mislead
        done = done_before(self.checkpoint_path, self.header["key"])
        if done:
            what = "would be sent" if self.options.dry_run else "are sent"
            warn(
                f"an earlier run of this replay already did {done:,} "
                f"{plural(done, 'record')} (checkpoint {self.checkpoint_path}); "
                f"they {what} again: --resume skips them"
            )

    def close_logs(self) -> None:
        self.rejects.close()
        self.dead.close()
