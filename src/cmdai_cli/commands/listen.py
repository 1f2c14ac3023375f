"""`cmdai listen`: a local Segment Tracking API that shows messages as they arrive."""

from __future__ import annotations

import functools
import os
import stat
import sys
import threading
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, finish
from cmdai_cli.commands._options import PlanOpt, read_secret
from cmdai_cli.commands._received import header_line, row_line
from cmdai_cli.errors import UsageError
from cmdai_cli.printable import printable
from cmdai_cli.values import plural

if TYPE_CHECKING:
    from cmdai_cli.receiver import Received, Stats
    from cmdai_cli.receiver.forward import ForwardCounts, Intake
    from cmdai_cli.receiver.listen import Listening, ListenResult


def register(app: typer.Typer) -> None:
    command(app, "listen")(listen)


def summary_text(stats: Stats) -> str:
    rejected = sum(stats.rejected.values())
    detail = ", ".join(f"{status}: {n}" for status, n in sorted(stats.rejected.items()))
    return (
        f"Stopped: {stats.requests} {plural(stats.requests, 'request')}; "
        f"{stats.accepted} {plural(stats.accepted, 'message')} accepted ({stats.flagged} flagged); "
        f"{rejected} {plural(rejected, 'request')} rejected" + (f" ({detail})" if detail else "")
    )


def forward_text(counts: ForwardCounts) -> str:
    text = (
        f"Forwarded {counts.forwarded} {plural(counts.forwarded, 'message')} to {counts.target} "
        f"({counts.requests} {plural(counts.requests, 'request')}); {counts.failed} failed"
    )
    return text + (f" (in {counts.dead_letter})" if counts.failed else "")


def render(result: ListenResult) -> None:
    output.info(summary_text(result.stats))
    if result.forward is not None:
        output.info(forward_text(result.forward))


def outcome(intake: Intake) -> str:
    """A forward's outcome in the table's column."""
    status = intake.status
    answer = "no answer" if status is None else str(status)
    if intake.state == "forwarded":
        return answer + (f" ({intake.attempts} tries)" if intake.attempts > 1 else "")
    if not intake.attempts:  # turned away by a full buffer, or still queued at the stop
        return f"{intake.state} (not sent)"
    return f"{intake.state} ({answer})"


class _Printer:
    """Prints what each request brought, in one write; handler threads call it at once."""

    def __init__(self, as_json: bool, forward: bool = False) -> None:
        self.as_json = as_json
        self.forward = forward
        self.lock = threading.Lock()
        self.header_done = False
        self.warned: set[str] = set()

    def __call__(self, batch: list[Received]) -> None:
        # Forwarding, a message is shown once its forward has an outcome (`forwarded`).
        if self.forward:
            return
        if self.as_json:
            data = b"".join(received.as_json_line() for received in batch)
        else:
            data = "".join(row_line(received) + "\n" for received in batch).encode()
        self._write(data)

    def forwarded(self, intake: Intake) -> None:
        """A request's messages, with what became of their forward: when it first waits
        for a retry (not under --json, whose lines are final) and when it is done."""
        rows = intake.rows()
        if self.as_json:
            if intake.state == "retrying":
                return
            state = orjson.dumps(
                {"state": intake.state, "status": intake.status, "attempts": intake.attempts}
            )
            data = b"".join(
                received.as_json_line()[:-2] + b',"forward":' + state + b"}\n" for received in rows
            )
        else:
            column = outcome(intake)
            data = "".join(row_line(received, column) + "\n" for received in rows).encode()
        if intake.state == "failed" and intake.outcome not in self.warned:
            self.warned.add(intake.outcome)
            reason = printable(intake.outcome.removeprefix("failed: "))
            output.warn(f"not forwarded (its messages go to the dead letter): {reason}")
        self._write(data)

    def _write(self, data: bytes) -> None:
        with self.lock:
            if not self.as_json and not self.header_done:
                data = (header_line(forward=self.forward) + "\n").encode() + data
                self.header_done = True
            stream = getattr(sys.stdout, "buffer", None)
            if stream is None:
                sys.stdout.write(data.decode())
                sys.stdout.flush()
            else:
                sys.stdout.flush()
                stream.write(data)
                stream.flush()


def listen(
    port: Annotated[int, typer.Option("--port", help="Port to listen on; 0 picks a free one.")] = (
        8765
    ),
    bind: Annotated[
        str, typer.Option("--bind", help="Address to listen on (loopback unless you mean it).")
    ] = "127.0.0.1",
    write_key: Annotated[
        str | None,
        typer.Option(
            "--write-key",
            help=(
                "The source's write key: requests with another key are flagged (Segment "
                "takes them and drops them later), and the CDN settings are served for it "
                "alone."
            ),
            show_default=False,
        ),
    ] = None,
    reject_wrong_key: Annotated[
        bool,
        typer.Option(
            "--reject-wrong-key",
            help="Answer 401 to requests without the --write-key (Segment does not).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Append each accepted message to FILE as one NDJSON line before answering.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    keep: Annotated[
        int,
        typer.Option(
            "--keep",
            help="Messages held in memory for the inspection API and `cmdai expect`; the "
            "oldest beyond N are dropped and counted (--out keeps every one).",
            min=0,
        ),
    ] = 100_000,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file",
            help="Write the URL to FILE (atomically) once serving, for a CI step to wait "
            "on; removed on exit.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    exit_after: Annotated[
        int | None,
        typer.Option(
            "--exit-after",
            help="Stop (exit 0) once N messages were accepted.",
            min=1,
            show_default=False,
        ),
    ] = None,
    max_duration: Annotated[
        float | None,
        typer.Option(
            "--max-duration",
            help="Stop after SECONDS; exit 1 then if --exit-after was given and not reached.",
            min=0.001,
            show_default=False,
        ),
    ] = None,
    plan: PlanOpt = None,
    open_page: Annotated[
        bool,
        typer.Option("--open", help="Open the Source Debugger page in the default browser."),
    ] = False,
    ui_token: Annotated[
        str | None,
        typer.Option(
            "--ui-token",
            help="The token the Source Debugger page and the inspection API need (made up "
            "when bound off loopback); the Tracking API never needs one.",
            envvar="CMDAI_UI_TOKEN",
            show_default=False,
        ),
    ] = None,
    forward_to: Annotated[
        str | None,
        typer.Option(
            "--forward-to",
            help="Also send each accepted request on to this base URL (its path under the "
            "URL's), with retries, as it came: body bytes and write key.",
            show_default=False,
        ),
    ] = None,
    forward_header: Annotated[
        list[str] | None,
        typer.Option(
            "--forward-header",
            help="A header NAME:VALUE added to every forwarded request (repeatable).",
            show_default=False,
        ),
    ] = None,
    forward_rewrite_key: Annotated[
        str | None,
        typer.Option(
            "--forward-rewrite-key",
            help="Forward with this write key instead of the app's (- reads it from stdin).",
            show_default=False,
        ),
    ] = None,
    forward_dead_letter: Annotated[
        Path | None,
        typer.Option(
            "--forward-dead-letter",
            help="NDJSON file for the messages whose forward failed for good, for `cmdai "
            "replay` (default: one in the state directory).",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    forward_buffer: Annotated[
        int | None,
        typer.Option(
            "--forward-buffer",
            help="At most this many messages wait for the forward target at once (default "
            "100,000, as many as --keep); while it is full, new ones go straight to the "
            "dead letter.",
            min=1,
            show_default=False,
        ),
    ] = None,
    drain: Annotated[
        float,
        typer.Option(
            "--drain",
            help="At Ctrl-C or SIGTERM, wait up to SECONDS for forwards still on their way; "
            "what is left goes to the dead letter.",
            min=0,
        ),
    ] = 10.0,
) -> None:
    """Serve Segment's Tracking API locally and show each message as it arrives.

    POST /v1/batch (/v1/import, /v1/b) and /v1/{identify,track,page,screen,group,alias}
    (/v1/{i,t,p,s,g,a}) are answered as Segment answers them; messages Segment would
    accept but drop are flagged. Point a Segment SDK's host at the printed URL. For
    analytics.js, use the URL as its cdnURL too: GET /v1/projects/{writeKey}/settings
    serves a settings document that sends the page's calls here, and every answer
    carries CORS headers. Ctrl-C or SIGTERM stops it with a summary and exit 0:
    stopping is how listen ends, not an interruption (a second one while it stops
    ends it at once, exit 130, as for every long run).

    Beside it, an inspection API for tests and `cmdai expect`: GET /cmdai/summary
    (counts by type, event and flag), GET /cmdai/messages (filters type, event, userId,
    anonymousId, flagged=true|false, since, limit) and POST /cmdai/reset.

    With --plan, every message is also checked against a tracking plan, live: each
    violation is a flag ("plan: required property missing at /properties/trigger").

    The Source Debugger, a page at /cmdai/ui/ (its address is printed; --open opens
    it), shows each message live, finds one among thousands, and shows what Command AI
    records of it. Bound off loopback it needs a token (printed, or --ui-token).

    With --forward-to URL, listen sits between an app and Segment (or any collector):
    it answers the app itself, and sends each accepted request on to URL through
    replay's delivery (retries with backoff, an adaptive limit, 429 and Retry-After
    honoured), each once. The table's forward column says what became of it; messages
    whose forward failed for good go to --forward-dead-letter, as do those still on
    their way when --drain runs out at a stop (or at a second Ctrl-C, exit 130), and
    those that come while --forward-buffer messages already wait for the target.
    """
    # Imported here: the receiver (asyncio, h11, its routes) adds about 70 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.receiver import ListenOptions
    from cmdai_cli.receiver.listen import run
    from cmdai_cli.receiver.options import ForwardOptions, parse_header

    forward = None
    if forward_to is not None:
        key = None
        if forward_rewrite_key is not None:
            key = read_secret(
                forward_rewrite_key,
                what="forward rewrite key",
                env="CMDAI_FORWARD_REWRITE_KEY",
            )
        forward = ForwardOptions(
            forward_to,
            headers=tuple(parse_header(text) for text in forward_header or ()),
            rewrite_key=key,
            dead_letter=forward_dead_letter,
            drain=drain,
            buffer=forward_buffer or ForwardOptions.buffer,
        )
    elif forward_header or forward_rewrite_key or forward_dead_letter or forward_buffer:
        raise UsageError(
            "--forward-header, --forward-rewrite-key, --forward-dead-letter and "
            "--forward-buffer need --forward-to"
        )
    options = ListenOptions(
        bind=bind,
        port=port,
        write_key=write_key,
        reject_wrong_key=reject_wrong_key,
        out=out,
        keep=keep,
        plan=plan,
        ready_file=ready_file,
        exit_after=exit_after,
        max_duration=max_duration,
        ui_token=ui_token,
        forward=forward,
    )
    printer = _Printer(STATE.json, forward is not None)
    result = run(
        options,
        on_batch=printer,
        on_start=functools.partial(_started, open_page=open_page, forward=forward_to),
        on_batch_may_block=not _is_file(sys.stdout),
        on_forward=printer.forwarded if forward is not None else None,
        on_drain=functools.partial(_draining, drain=drain),
    )
    finish(result, render)


def _started(listening: Listening, *, open_page: bool = False, forward: str | None = None) -> None:
    if STATE.json:
        started: dict[str, Any] = {"listening": listening.url, "debugger": listening.debugger}
        if listening.dead_letter is not None:
            started["deadLetter"] = str(listening.dead_letter)
        output.emit_json(started)
    else:
        output.out(f"Listening on {listening.url}")
        output.info(f"Debugger: {listening.debugger}")
        if listening.token_given:
            output.info("The debugger asks for the --ui-token: add ?token=... once.")
        output.info(
            "Segment Tracking API: POST /v1/batch, /v1/{identify,track,page,screen,group,"
            "alias} and analytics.js's paths; inspection API under /cmdai/. Point an "
            "SDK's host (and analytics.js's cdnURL) at this URL; Ctrl-C stops."
        )
        if forward is not None:
            # The URL was checked to hold no credentials and no query string.
            output.info(
                f"Forwarding each accepted request to {forward}; what fails for good "
                f"goes to {listening.dead_letter}"
            )
    # A browser that cannot be started is no reason to stop listening.
    if open_page and not webbrowser.open(listening.debugger):
        output.warn(f"could not open a browser: open {listening.debugger} yourself")
    if listening.unguarded:
        where = listening.bind
        output.warn(
            f"listening on {where} without --write-key and --reject-wrong-key: "
            "anyone who reaches it can post"
        )


def _draining(messages: int, *, drain: float) -> None:
    on_way = "still on its way" if messages == 1 else "still on their way"
    output.info(
        f"Forwarding {messages} {plural(messages, 'message')} {on_way} (up to --drain "
        f"{drain:g} s; Ctrl-C again writes what is left to the dead letter at once)"
    )


def _is_file(stream: Any) -> bool:
    """Whether `stream` is a regular file (or /dev/null): writing to it never waits on a reader."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    if stat.S_ISREG(mode):
        return True
    try:
        null = os.stat(os.devnull)
        here = os.fstat(stream.fileno())
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (null.st_dev, null.st_ino)
