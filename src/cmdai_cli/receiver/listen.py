"""`cmdai listen`'s run: serve until Ctrl-C, SIGTERM, enough messages or the time limit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from cmdai_cli import _speed, outpaths
from cmdai_cli.errors import ExitCode, UsageError
from cmdai_cli.plans import Validator, load_plan, plan_flags
from cmdai_cli.receiver.forward import ForwardCounts, Intake
from cmdai_cli.receiver.options import ListenOptions
from cmdai_cli.receiver.service import Receiver
from cmdai_cli.receiver.store import Received, Stats
from cmdai_cli.receiver.ui import UI_PATH
from cmdai_cli.stopping import stop_on_signals
from cmdai_cli.values import is_loopback, plural

EndedBy = Literal["signal", "exit-after", "max-duration"]


@dataclass(frozen=True)
class Listening:
    """Where the receiver listens, and whether anyone who reaches it may post."""

    url: str
    bind: str
    unguarded: bool
    # The Source Debugger's address, with its token when one was made up for this run.
    debugger: str = ""
    # Whether the debugger needs a token the user gave (`--ui-token`): not printed.
    token_given: bool = False
    # With --forward-to: where the messages whose forward fails for good go.
    dead_letter: Path | None = None


@dataclass(frozen=True)
class ListenResult:
    """How a listen ended: the final counts, why it stopped, and what it waited for.

    `ended_by` is "signal" (Ctrl-C or SIGTERM: how listen ends, not an interruption),
    "exit-after" (the wanted count arrived) or "max-duration". A `--max-duration` that
    passed before `--exit-after`'s count arrived is a failure, and so is a message whose
    forward failed (it is in the dead letter); a second Ctrl-C that cut the forwards'
    drain short is an interruption (130), though what was open is in the dead letter.
    """

    stats: Stats
    ended_by: EndedBy
    exit_after: int | None = None
    max_duration: float | None = None
    # With --forward-to: what became of the forwarded messages.
    forward: ForwardCounts | None = None

    @property
    def short(self) -> bool:
        """The time ran out before the messages `--exit-after` waits for arrived."""
        return (
            self.ended_by == "max-duration"
            and self.exit_after is not None
            and self.stats.accepted < self.exit_after
        )

    def as_json(self) -> dict[str, Any]:
        summary = self.stats.as_dict()
        if self.forward is not None:
            summary["forward"] = self.forward.as_json()
        return {"summary": summary}

    @property
    def exit_code(self) -> ExitCode:
        if self.forward is not None and self.forward.hurried:
            return ExitCode.INTERRUPTED
        failed = self.forward is not None and self.forward.failed > 0
        return ExitCode.FAILURE if self.short or failed else ExitCode.OK

    @property
    def problem(self) -> str | None:
        forward = self.forward
        if forward is not None and forward.failed:
            n = forward.failed
            return (
                f"{n} {plural(n, 'message')} not forwarded to {forward.target}: "
                f"in {forward.dead_letter}, for `cmdai replay`"
            )
        if not self.short:
            return None
        return (
            f"--max-duration {self.max_duration:g}s passed with {self.stats.accepted} of "
            f"the {self.exit_after} messages --exit-after waits for"
        )


def write_ready_file(path: Path, url: str) -> outpaths.Created | None:
    """Write `url` to `path` atomically: a reader sees no file or the whole URL.

    A device or FIFO is written through. Returns the file made, for removing it at the end.
    """
    try:
        outpaths.write_whole(path, (url + "\n").encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the ready file: {exc.strerror}") from None
    return outpaths.Created.of(path)


def run(
    options: ListenOptions,
    *,
    on_batch: Callable[[list[Received]], Any],
    on_start: Callable[[Listening], Any],
    on_batch_may_block: bool = True,
    on_forward: Callable[[Intake], Any] | None = None,
    on_drain: Callable[[int], Any] | None = None,
) -> ListenResult:
    """Serve as `options` say until SIGINT or SIGTERM, `exit_after` messages were
    accepted, or `max_duration` seconds passed; return the final counts.

    With a tracking plan, every message that breaks it is flagged with each violation
    (`plan: <kind> at <pointer>`); the plan is read before the port is bound, so a bad
    plan file stops nothing that had started.

    `on_start` is called once the port is bound (the ready file is written after it);
    `on_batch` with what each request brought, after its answer. When it may block (it
    writes to a terminal or a pipe, whose reader can stop reading) it runs in a thread
    of its own, so that a stalled reader stalls no connection; otherwise (a file, as the
    --out file is written) on the server's loop: the hand-over between threads cost
    `listen --json` 7% of its intake (0.88 against 0.95 of a do-nothing sink,
    benchmarks/receiver.py).

    With `options.forward`, every accepted request is forwarded, and `on_forward` told
    (on a thread of its own) when it waits for a retry and when it is done; at the stop,
    `on_drain` is told how many messages are still being forwarded, for up to the
    drain's seconds.
    """
    check = planned = None
    if options.plan is not None:
        validator = Validator(load_plan(options.plan))
        check = plan_flags(validator)

        def planned(message: Mapping[str, Any]) -> bool:
            return validator.rule_for(message) is not None

    ready_file = options.ready_file
    if ready_file is not None:
        # A file left by an earlier run must not announce this one before it serves
        # (only a regular file: a device or FIFO given as the path is not cmdai's).
        left = outpaths.Created.of(ready_file)
        if left is not None:
            left.remove()
    made: list[outpaths.Created | None] = [None]
    exit_after = options.exit_after
    ended: list[EndedBy] = ["signal"]
    counted = [0]
    count_lock = threading.Lock()
    with stop_on_signals() as stop:

        def batch(received: list[Received]) -> Any:
            try:
                return on_batch(received)
            finally:
                if exit_after is not None:
                    with count_lock:
                        counted[0] += len(received)
                        if counted[0] >= exit_after and not stop.requested:
                            ended[0] = "exit-after"
                            stop.request()

        workers = options.limits.workers if on_batch_may_block else 0
        limits = replace(options.limits, workers=workers)
        receiver = Receiver(
            replace(options, limits=limits),
            on_batch=batch,
            check=check,
            planned=planned,
            on_forward=on_forward,
        )
        receiver.start()
        _speed.settle_long_lived()
        try:
            guarded = options.write_key is not None and options.reject_wrong_key
            bind = options.bind
            given = options.ui_token is not None
            debugger = receiver.url + UI_PATH if given else receiver.ui_url
            unguarded = not is_loopback(bind) and not guarded
            forwarder = receiver.forwarder
            dead_letter = forwarder.dead_letter if forwarder is not None else None
            on_start(Listening(receiver.url, bind, unguarded, debugger, given, dead_letter))
            if ready_file is not None:
                made[0] = write_ready_file(ready_file, receiver.url)
            if not stop.wait(options.max_duration):
                ended[0] = "max-duration"
        finally:
            if receiver.forwarder is not None:
                stop.hurry = receiver.forwarder.hurry
            receiver.stop(on_drain)
            if made[0] is not None:
                made[0].remove()
    return ListenResult(
        receiver.stats, ended[0], exit_after, options.max_duration, receiver.forwarded
    )
