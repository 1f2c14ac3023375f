"""`cmdai doctor`: check the set-up and every configured service, for people and CI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, finish
from cmdai_cli.commands._options import ApiHostOpt, CdnHostOpt, HostOpt, RegionOpt, TimeoutOpt

if TYPE_CHECKING:
    from cmdai_cli.doctor import DoctorResult

MARKS = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
# On a terminal, as gh's and stripe's checks read: a symbol and a colour per outcome.
SYMBOLS = {"pass": ("✓", "green"), "fail": ("✗", "bold red"), "skip": ("-", "yellow")}


def register(app: typer.Typer) -> None:
    command(app, "doctor")(doctor)


def render(report: DoctorResult) -> None:
    if output.styled():
        render_styled(report)
        return
    width = max(len(check.name) for check in report.checks)
    for check in report.checks:
        output.out(f"{MARKS[check.status]}  {check.name:<{width}}  {check.detail}")
        if check.hint and check.status == "fail":
            output.out(f"{'':<{width + 6}}  hint: {check.hint}")


def render_styled(report: DoctorResult) -> None:
    """Symbols and colours, a hint under each failure, and a count of each outcome."""
    # Imported here, as output's console is: Rich costs about 15-25 ms (python -X
    # importtime) that `doctor --help` and `--json` never need.
    from rich.text import Text

    console = output.console()
    width = max(len(check.name) for check in report.checks)
    for check in report.checks:
        symbol, style = SYMBOLS[check.status]
        detail_style = "dim" if check.status == "skip" else ""
        # Text, not markup: details quote what services and files said.
        console.print(
            Text.assemble(
                (symbol, style),
                " ",
                (f"{check.name:<{width}}", "bold"),
                "  ",
                (check.detail, detail_style),
            )
        )
        if check.hint and check.status == "fail":
            console.print(Text.assemble(" " * (width + 4), ("hint: ", "cyan"), check.hint))
    counts = {status: 0 for status in SYMBOLS}
    for check in report.checks:
        counts[check.status] += 1
    summary = Text.assemble(
        "\n",
        (f"{counts['pass']} passed", "green"),
        ", ",
        (f"{counts['fail']} failed", "bold red" if counts["fail"] else ""),
        ", ",
        (f"{counts['skip']} skipped", "yellow" if counts["skip"] else ""),
    )
    console.print(summary)


def doctor(
    send_test: Annotated[
        bool,
        typer.Option(
            "--send-test",
            help="Send the test event to Segment instead of an empty batch (the event "
            "then shows in the Source Debugger).",
        ),
    ] = False,
    host: HostOpt = None,
    region: RegionOpt = None,
    cdn_host: CdnHostOpt = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            help="Command AI webhook URL to check, overriding the profile's.",
            show_default=False,
        ),
    ] = None,
    api_host: ApiHostOpt = None,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Check the profile, the write key, and that Segment, the webhook and the Public API answer.

    Each check passes, fails (with a hint) or is skipped when not configured. The Segment
    check sends an empty batch (no event) unless --send-test is given. Segment takes
    any write key, so the key is checked on Segment's CDN: that a source has it, that
    the Command AI destination enabled on it has the profile's org_id, and that the
    source's region is the one in use. With a Public API token it also asks Segment
    whether any event reached the source in the last hour. Nothing is
    prompted for: give secrets as environment variables (CMDAI_WRITE_KEY,
    CMDAI_PUBLIC_API_TOKEN, CMDAI_WEBHOOK_SHARED_SECRET) in CI. Exit 0 only when no
    check fails, else 1.
    """
    # Imported here: the checks load pydantic, httpx and the Segment library, about 200 ms
    # (python -X importtime) that --help and Tab completion never need.
    from cmdai_cli import doctor as checks

    request = checks.DoctorRequest(
        profile=STATE.profile,
        segment_host=host,
        region=region,
        cdn_host=cdn_host,
        webhook_url=webhook_url,
        api_host=api_host,
        send_test=send_test,
        timeout=timeout,
    )
    finish(checks.run(request), render)
