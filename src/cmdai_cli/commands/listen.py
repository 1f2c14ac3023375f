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

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, finish
from cmdai_cli.commands._options import PlanOpt
from cmdai_cli.commands._received import header_line, row_line
from cmdai_cli.values import plural

if TYPE_CHECKING:
    from cmdai_cli.receiver import Received, Stats
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


def render(result: ListenResult) -> None:
    output.info(summary_text(result.stats))


class _Printer:
    """Prints what each request brought, in one write; handler threads call it at once."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.lock = threading.Lock()
        self.header_done = False

    def __call__(self, batch: list[Received]) -> None:
        if self.as_json:
            data = b"".join(received.as_json_line() for received in batch)
        else:
            data = "".join(row_line(received) + "\n" for received in batch).encode()
        with self.lock:
            if not self.as_json and not self.header_done:
                data = (header_line() + "\n").encode() + data
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
    """
    # Imported here: the receiver (asyncio, h11, its routes) adds about 70 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli.receiver import ListenOptions
    from cmdai_cli.receiver.listen import run

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
    )
    result = run(
        options,
        on_batch=_Printer(STATE.json),
        on_start=functools.partial(_started, open_page=open_page),
        on_batch_may_block=not _is_file(sys.stdout),
    )
    finish(result, render)


def _started(listening: Listening, *, open_page: bool = False) -> None:
    if STATE.json:
        output.emit_json({"listening": listening.url, "debugger": listening.debugger})
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
    # A browser that cannot be started is no reason to stop listening.
    if open_page and not webbrowser.open(listening.debugger):
        output.warn(f"could not open a browser: open {listening.debugger} yourself")
    if listening.unguarded:
        where = listening.bind
        output.warn(
            f"listening on {where} without --write-key and --reject-wrong-key: "
            "anyone who reaches it can post"
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
