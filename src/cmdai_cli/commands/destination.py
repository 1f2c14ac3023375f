"""`cmdai destination`: configure the Command AI and webhook destinations, and show them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command, finish, resolve_settings
from cmdai_cli.commands._common import group as new_group
from cmdai_cli.commands._options import (
    ApiHostOpt,
    ApiTimeoutOpt,
    MappingOrRecommendedOpt,
    TokenOpt,
    read_secret,
)

if TYPE_CHECKING:
    from cmdai_cli.destination import Applied, ConfigureResult, ShowResult
    from cmdai_cli.destination.changes import Change
    from cmdai_cli.destination.desired import Destination

group = new_group("Set up Segment's Command AI and webhook destinations for a source.")


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="destination")


@command(group, "configure")
def configure(
    org_id: Annotated[
        str | None,
        typer.Option("--org-id", help="Command AI organization ID.", show_default=False),
    ] = None,
    deploy_via_segment: Annotated[
        bool | None,
        typer.Option(
            "--deploy-via-segment/--no-deploy-via-segment",
            help="Let Segment load Command AI on the page (setting 'deploy').",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="Segment source: its id, slug or name.", show_default=False),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            help="Command AI's webhook URL (https; plain http only on loopback).",
            show_default=False,
        ),
    ] = None,
    shared_secret: Annotated[
        str | None,
        typer.Option(
            "--shared-secret",
            help="Webhook shared secret (signs each body); '-' reads it from stdin.",
            show_default=False,
        ),
    ] = None,
    mapping: MappingOrRecommendedOpt = None,
    trigger: Annotated[
        str | None,
        typer.Option(
            "--trigger",
            help='FQL trigger of the webhook subscription (default: type = "identify").',
            show_default=False,
        ),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Make it so through Segment's Public API.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --apply: print the writes, send only reads."),
    ] = False,
    token: TokenOpt = None,
    api_host: ApiHostOpt = None,
    timeout: ApiTimeoutOpt = 15.0,
) -> None:
    """Store a destination set-up in the profile and print it in Segment's terms.

    With --org-id: the Command AI destination (identify -> identifyUser, track ->
    trackEvent). With --webhook-url: a Webhooks (Actions) destination posting to Command
    AI. With --apply: create or update them on the source; safe to run again.
    """
    # Imported here: the core loads pydantic and httpx, about 150 ms (python -X importtime)
    # that --help and Tab completion never need.
    from cmdai_cli import destination

    secret = None
    if shared_secret is not None:
        secret = read_secret(shared_secret, what="shared secret", env="CMDAI_WEBHOOK_SHARED_SECRET")
    request = destination.ConfigureRequest(
        settings=resolve_settings({"public_api_token": token, "api_host": api_host}, create=True),
        org_id=org_id,
        deploy=deploy_via_segment,
        source=source,
        webhook_url=webhook_url,
        shared_secret=secret,
        mapping=None if mapping is None else str(mapping),
        trigger=trigger,
        apply=apply,
        dry_run=dry_run,
        timeout=timeout,
    )
    try:
        result = destination.configure(
            request, on_wait=output.warn, on_done=None if STATE.json else _report_done
        )
    except destination.PartialApply as exc:
        if STATE.json and exc.result is not None:
            output.emit_json(exc.result.as_json())
        raise
    for warning in result.warnings:
        output.warn(warning)
    finish(result, _render_configured)


def _render_configured(result: ConfigureResult) -> None:
    if result.saved:
        output.info(f"Stored {', '.join(result.saved)} in profile '{result.profile}'.")
    for dest in result.destinations:
        _render_destination(dest)
    if result.applied is not None:
        _render_applied(result.applied)


def _report_done(change: Change) -> None:
    output.info(f"done: {change.what}")


def _value(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"@path"}:
        return str(value["@path"])
    return json.dumps(value, ensure_ascii=False)


def _render_destination(dest: Destination) -> None:
    title = "Command AI destination" if dest.kind == "commandai" else "Webhooks destination"
    settings = ", ".join(f"{k} = {_value(v)}" for k, v in dest.shown_settings.items()) or "none"
    output.out(f"{title} {dest.name!r} (catalog id {dest.metadata_id})")
    output.out(f"  settings: {settings}")
    for sub in dest.subscriptions:
        output.out(
            f"  subscription {sub.key} {sub.name!r} (action {sub.action_id}) on {sub.trigger}"
        )
        for key, value in sub.settings.items():
            if key == "data" and isinstance(value, dict) and set(value) != {"@path"}:
                output.out("    data:")
                for name, source in value.items():
                    output.out(f"      {name} <- {_value(source)}")
            else:
                output.out(f"    {key} <- {_value(value)}")


def _render_applied(applied: Applied) -> None:
    output.out(f"Source {applied.changes.source.label} at {applied.api_host}")
    changes = applied.changes.changes
    if not changes:
        output.out("No changes: Segment already matches.")
        return
    for change in changes:
        body = json.dumps(change.shown_body, ensure_ascii=False, sort_keys=True)
        output.out(f"  {change.method} {change.shown_path} {body}")
    if applied.dry_run:
        output.out(f"Dry run: {len(changes)} request(s) would be sent; none was.")
    else:
        output.out(f"Applied {len(changes)} change(s).")


@command(group, "show")
def show(
    remote: Annotated[
        bool, typer.Option("--remote", help="Also read Segment's copy and show the differences.")
    ] = False,
    token: TokenOpt = None,
    api_host: ApiHostOpt = None,
    timeout: ApiTimeoutOpt = 15.0,
) -> None:
    """Show the destination set-up the profile holds (secrets masked)."""
    # Imported here: see `configure` (about 150 ms).
    from cmdai_cli import destination

    request = destination.ShowRequest(
        settings=resolve_settings({"public_api_token": token, "api_host": api_host}),
        remote=remote,
        timeout=timeout,
    )
    result = destination.show(request, on_wait=output.warn)
    for warning in result.warnings:
        output.warn(warning)
    finish(result, _render_shown)


def _render_shown(result: ShowResult) -> None:
    output.out(f"profile {result.profile}")
    for key, value in result.settings.items():
        if value is not None:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            output.out(f"  {key}: {shown}")
    if not result.destinations:
        output.info("No destination is set up; `cmdai destination configure` sets one up.")
    for dest in result.destinations:
        _render_destination(dest)
    compared = result.compared
    if compared is None:
        return
    output.out(f"Segment, source {compared.source.label}:")
    for kind, found in compared.found.items():
        if found is None:
            output.out(f"  {kind}: no destination")
            continue
        output.out(
            f"  {kind}: destination {found.id} {found.name!r}, "
            f"{'enabled' if found.enabled else 'disabled'}, "
            f"{len(found.subscriptions)} subscription(s)"
        )
    if compared.in_sync:
        output.out("In sync: Segment matches the profile.")
        return
    output.out("Differences (Segment -> profile):")
    for diff in result.differences:
        output.out(f"  {diff.action} {diff.resource}")
        for change in diff.fields:
            output.out(
                f"    {change['field']}: {_value(change['remote'])} -> {_value(change['desired'])}"
            )
