"""`cmdai listen`: a local Segment Tracking API that shows messages as they arrive."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command

if TYPE_CHECKING:
    from cmdai_cli.receiver import Received, Stats

COLUMNS = (("time", 12), ("type", 9), ("event / name", 32), ("user", 30))


def register(app: typer.Typer) -> None:
    command(app, "listen")(listen)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def what(message: dict[str, Any]) -> str:
    """The Source Debugger's summary of a message: event, page name, group or alias."""
    kind = message.get("type")
    if kind == "track":
        return str(message.get("event") or "")
    if kind in ("page", "screen"):
        return str(message.get("name") or message.get("category") or "")
    if kind == "group":
        return f"group {message.get('groupId', '')}"
    if kind == "alias":
        return f"{message.get('previousId', '')} -> {message.get('userId', '')}"
    return ""


def who(message: dict[str, Any]) -> str:
    if message.get("userId"):
        return str(message["userId"])
    if message.get("anonymousId"):
        return f"anon {message['anonymousId']}"
    return "-"


def header_line() -> str:
    return " ".join(f"{name:<{width}}" for name, width in COLUMNS) + " flags"


def row_line(received: Received) -> str:
    message = received.message
    cells = (
        received.received_at[11:23],
        str(message.get("type", "?")),
        what(message),
        who(message),
    )
    text = " ".join(f"{_cut(c, w):<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True))
    return text + " " + ", ".join(received.flags)


def summary_text(stats: Stats) -> str:
    rejected = sum(stats.rejected.values())
    detail = ", ".join(f"{status}: {n}" for status, n in sorted(stats.rejected.items()))
    return (
        f"Stopped: {stats.requests} requests; {stats.accepted} messages accepted "
        f"({stats.flagged} flagged); {rejected} requests rejected"
        + (f" ({detail})" if detail else "")
    )


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
            help="Require this write key (Basic auth or body writeKey); others get 401.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Append each accepted message to FILE as one NDJSON line before answering.",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve Segment's Tracking API locally and show each message as it arrives.

    POST /v1/batch and /v1/{identify,track,page,screen,group,alias} are answered as
    Segment answers them; messages Segment would accept but drop are flagged. Point a
    Segment SDK's host at the printed URL. Ctrl-C stops it with a summary.
    """
    import gc
    import signal

    from cmdai_cli import profile, redact
    from cmdai_cli.errors import UsageError
    from cmdai_cli.receiver import Receiver

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port number (0-65535)")
    if write_key is not None:
        redact.register(write_key)
    printer = _Printer(STATE.json)
    receiver = Receiver(bind=bind, port=port, write_key=write_key, out=out, on_batch=printer)
    receiver.start()
    # Everything imported so far lives as long as the process: keep it out of GC passes.
    gc.freeze()
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stop.set()

    # Both signals set the same event, also when the shell started us ignoring SIGINT.
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_term)
    try:
        if STATE.json:
            output.emit_json({"listening": receiver.url})
        else:
            output.out(f"Listening on {receiver.url}")
            output.info(
                "Segment Tracking API: POST /v1/batch, /v1/{identify,track,page,screen,group,"
                "alias}. Point an SDK's host at this URL; Ctrl-C stops."
            )
        if not profile.is_loopback(bind) and write_key is None:
            output.warn(f"listening on {bind} without --write-key: anyone who reaches it can post")
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        receiver.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    if STATE.json:
        output.emit_json({"summary": receiver.stats.as_dict()})
    else:
        output.info(summary_text(receiver.stats))
