"""`cmdai destination`: configure the Command AI and webhook destinations, and show them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from cmdai_cli import output
from cmdai_cli.commands._common import STATE, command
from cmdai_cli.commands._common import group as new_group
from cmdai_cli.commands._options import ApiHostOpt, MappingOrRecommendedOpt, TokenOpt

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
) -> None:
    """Store a destination set-up in the profile and print it in Segment's terms.

    With --org-id: the Command AI destination (identify -> identifyUser, track ->
    trackEvent). With --webhook-url: a Webhooks (Actions) destination posting to Command
    AI. With --apply: create or update them on the source; safe to run again.
    """
    from cmdai_cli import destination
    from cmdai_cli.commands._secrets import read_secret

    secret = None
    if shared_secret is not None:
        secret = read_secret(shared_secret, what="shared secret", env="CMDAI_WEBHOOK_SHARED_SECRET")
    request = destination.ConfigureRequest(
        org_id=org_id,
        deploy=deploy_via_segment,
        source=source,
        webhook_url=webhook_url,
        shared_secret=secret,
        mapping=None if mapping is None else str(mapping),
        trigger=trigger,
        apply=apply,
        dry_run=dry_run,
        token=token,
        api_host=api_host,
    )
    try:
        result = destination.configure(
            STATE.profile,
            request,
            on_wait=output.info,
            on_done=None if STATE.json else _report_done,
        )
    except destination.PartialApply as exc:
        if STATE.json and exc.result is not None:
            output.emit_json(exc.result)
        raise
    for warning in result["warnings"]:
        output.warn(warning)
    if STATE.json:
        output.emit_json(result)
        return
    if result["saved"]:
        output.info(f"Stored {', '.join(result['saved'])} in profile '{result['profile']}'.")
    for dest in result["destinations"]:
        _render_destination(dest)
    if result["apply"] is not None:
        _render_apply(result["apply"])


def _report_done(write: Any) -> None:
    output.info(f"done: {write.what}")


def _value(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"@path"}:
        return str(value["@path"])
    return json.dumps(value, ensure_ascii=False)


def _render_destination(dest: dict[str, Any]) -> None:
    info = dest["destination"]
    title = "Command AI destination" if dest["kind"] == "commandai" else "Webhooks destination"
    settings = ", ".join(f"{k} = {_value(v)}" for k, v in info["settings"].items()) or "none"
    output.out(f"{title} {info['name']!r} (catalog id {info['metadataId']})")
    output.out(f"  settings: {settings}")
    for sub in dest["subscriptions"]:
        output.out(
            f"  subscription {sub['action']} {sub['name']!r} (action {sub['actionId']}) "
            f"on {sub['trigger']}"
        )
        for key, value in sub["settings"].items():
            if key == "data" and isinstance(value, dict) and set(value) != {"@path"}:
                output.out("    data:")
                for name, source in value.items():
                    output.out(f"      {name} <- {_value(source)}")
            else:
                output.out(f"    {key} <- {_value(value)}")


def _render_apply(outcome: dict[str, Any]) -> None:
    source = outcome["source"]
    output.out(
        f"Source {source['slug'] or source['name']} ({source['id']}) at {outcome['api_host']}"
    )
    requests = outcome["requests"]
    if not requests:
        output.out("No changes: Segment already matches.")
        return
    for req in requests:
        body = json.dumps(req["body"], ensure_ascii=False, sort_keys=True)
        output.out(f"  {req['method']} {req['path']} {body}")
    if outcome["dry_run"]:
        output.out(f"Dry run: {len(requests)} request(s) would be sent; none was.")
    else:
        output.out(f"Applied {len(requests)} change(s).")


@command(group, "show")
def show(
    remote: Annotated[
        bool, typer.Option("--remote", help="Also read Segment's copy and show the differences.")
    ] = False,
    token: TokenOpt = None,
    api_host: ApiHostOpt = None,
) -> None:
    """Show the destination set-up the profile holds (secrets masked)."""
    from cmdai_cli import destination

    result = destination.show(
        STATE.profile, remote=remote, token=token, api_host=api_host, on_wait=output.info
    )
    for warning in result["warnings"]:
        output.warn(warning)
    if STATE.json:
        output.emit_json(result)
        return
    output.out(f"profile {result['profile']}")
    for key, value in result["settings"].items():
        if value is not None:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            output.out(f"  {key}: {shown}")
    if not result["destinations"]:
        output.info("No destination is set up; `cmdai destination configure` sets one up.")
    for dest in result["destinations"]:
        _render_destination(dest)
    if result["remote"] is None:
        return
    source = result["remote"]["source"]
    output.out(f"Segment, source {source['slug'] or source['name']} ({source['id']}):")
    for kind, found in result["remote"]["destinations"].items():
        if found is None:
            output.out(f"  {kind}: no destination")
            continue
        info = found["destination"]
        output.out(
            f"  {kind}: destination {info['id']} {info['name']!r}, "
            f"{'enabled' if info['enabled'] else 'disabled'}, "
            f"{len(found['subscriptions'])} subscription(s)"
        )
    if result["in_sync"]:
        output.out("In sync: Segment matches the profile.")
        return
    output.out("Differences (Segment -> profile):")
    for diff in result["differences"]:
        output.out(f"  {diff['action']} {diff['resource']}")
        for change in diff["fields"]:
            output.out(
                f"    {change['field']}: {_value(change['remote'])} -> {_value(change['desired'])}"
            )
