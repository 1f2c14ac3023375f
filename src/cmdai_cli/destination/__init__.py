"""Segment destinations for Command AI: what they should be (`desired`), what Segment has,
and the writes that make the one into the other (`plan`); here, the command's core.

Two destinations can be configured on a Segment source:

* the **Command AI** (CommandBar) device-mode destination, settings `orgId` and `deploy`,
  with the subscriptions `identifyUser` (on identify) and `trackEvent` (on track);
* a **Webhooks (Actions)** destination posting to Command AI's webhook, with a shared
  secret and one `send` subscription whose `data` is built from a `[mapping]` table.

`plan` only reads; it returns the differences and the list of writes. `apply` sends the
writes in order and, when one fails after others succeeded, says which were done and
which were not. Both are idempotent by construction: a second plan after a complete
apply is empty, and one after a part-way apply holds exactly the writes still missing.

Org ID rule: 1 to 64 characters of ASCII letters, digits, `-` and `_`. The id becomes a
path segment of Command AI's script URL (`https://api.commandbar.com/latest/{orgId}`), so
anything else (spaces, slashes, dots, quotes) cannot be a working id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cmdai_cli import redact
from cmdai_cli.destination.apply import PartialApply, apply
from cmdai_cli.destination.changes import Write, plan
from cmdai_cli.destination.desired import (
    COMMANDAI,
    WEBHOOK,
    check_org_id,
    check_webhook_mapping,
    check_webhook_url,
    commandai_destination,
    configured_kinds,
    desired_from_values,
    load_mapping_spec,
    mapping_warnings,
    webhook_destination,
)
from cmdai_cli.errors import ConfigError, UsageError

__all__ = [
    "ConfigureRequest",
    "PartialApply",
    "check_org_id",
    "check_webhook_mapping",
    "commandai_destination",
    "configure",
    "show",
    "webhook_destination",
]


# ---------------------------------------------------------------- the command's core


@dataclass
class ConfigureRequest:
    """What `destination configure` was asked; None means "not given"."""

    org_id: str | None = None
    deploy: bool | None = None
    source: str | None = None
    webhook_url: str | None = None
    shared_secret: str | None = None
    mapping: str | None = None
    trigger: str | None = None
    apply: bool = False
    dry_run: bool = False
    token: str | None = None
    api_host: str | None = None
    timeout: float = 15.0


SHOWN_SETTINGS = (
    "org_id",
    "deploy_via_segment",
    "source",
    "webhook_url",
    "webhook_shared_secret",
    "webhook_trigger",
    "mapping",
    "api_host",
    "public_api_token",
)


def _require_source(values: Mapping[str, Any]) -> str:
    source = values.get("source")
    if not source:
        raise ConfigError(
            "no source is set: give --source (its id, slug or name), set $CMDAI_SOURCE, or "
            "store source in the profile"
        )
    return str(source)


def _kinds_asked(request: ConfigureRequest, values: Mapping[str, Any]) -> list[str]:
    kinds = []
    if request.org_id is not None or request.deploy is not None:
        kinds.append(COMMANDAI)
    webhook_flags = (request.webhook_url, request.shared_secret, request.mapping, request.trigger)
    if any(flag is not None for flag in webhook_flags):
        kinds.append(WEBHOOK)
    if not kinds:
        kinds = configured_kinds(values)
    if not kinds:
        raise UsageError(
            "nothing to configure: give --org-id (Command AI destination) or --webhook-url "
            "(webhook destination)"
        )
    return kinds


def configure(
    profile_flag: str | None,
    request: ConfigureRequest,
    *,
    on_wait: Callable[[str], None] | None = None,
    on_done: Callable[[Write], None] | None = None,
) -> dict[str, Any]:
    """Validate, store in the profile (not on a dry run), and with `apply` make Segment match.

    Returns the result as printed by `--json`. On a part-way failure raises PartialApply
    whose `result` holds the same object with what was and was not done.
    """
    from cmdai_cli import profile
    from cmdai_cli.public_api import connection_flags, open_client

    if request.dry_run and not request.apply:
        raise UsageError("--dry-run goes with --apply: it shows the requests --apply would send")
    api_host = None
    if request.api_host is not None:
        api_host = profile.check_url(request.api_host, what="--api-host")
    updates: dict[str, Any] = {}
    warnings: list[str] = []
    if request.org_id is not None:
        updates["org_id"] = check_org_id(request.org_id)
    if request.deploy is not None:
        updates["deploy_via_segment"] = request.deploy
    if request.source is not None:
        if not request.source.strip():
            raise UsageError("the source is empty: give its id, slug or name")
        updates["source"] = request.source.strip()
    if request.webhook_url is not None:
        updates["webhook_url"] = check_webhook_url(request.webhook_url)
    if request.shared_secret is not None:
        if not request.shared_secret:
            raise UsageError("the shared secret is empty")
        redact.register(request.shared_secret)
        updates["webhook_shared_secret"] = request.shared_secret
    if request.trigger is not None:
        from cmdai_cli.destination.trigger import check_trigger

        updates["webhook_trigger"] = check_trigger(request.trigger)
    if request.mapping is not None:
        table, where = load_mapping_spec(request.mapping)
        _, found = check_webhook_mapping(table, source=where)
        warnings.extend(found)
        updates["mapping"] = table

    store = profile.Store()
    config = store.load()
    name = profile.active_name(profile_flag, config)
    stored = config.profiles.get(name)
    # Segment shows the secret masked, so a new one is written only when it is new to us.
    secret_changed = request.shared_secret is not None and (
        stored is None or stored.webhook_shared_secret != request.shared_secret
    )
    # A new secret sent with --apply is stored only once Segment has it, so that re-running
    # the same command after a failure still knows it has to be sent.
    later = {}
    if secret_changed and request.apply:
        later = {"webhook_shared_secret": updates["webhook_shared_secret"]}
    first = {k: v for k, v in updates.items() if k not in later}
    if first and not request.dry_run:
        profile.save_profile(store, name, first)
    # --token and --api-host say how to reach Segment this time, not what the set-up is:
    # they are used, never stored.
    flags = {**updates, **connection_flags(request.token, None)}
    if api_host is not None:
        flags["api_host"] = api_host
    resolved = profile.resolve(profile_flag, flags, store=store)
    values = resolved.values
    kinds = _kinds_asked(request, values)
    desired = desired_from_values(values, kinds)
    result: dict[str, Any] = {
        "profile": resolved.profile,
        "saved": sorted(first) if not request.dry_run else [],
        "source": values.get("source"),
        "destinations": [d.shown() for d in desired],
        "warnings": warnings,
        "apply": None,
    }
    if not request.apply:
        return result
    source_ref = _require_source(values)
    with open_client(values, on_wait, timeout=request.timeout) as client:
        the_plan = plan(client, source_ref, desired, secret_given=secret_changed)
        result["warnings"].extend(the_plan.warnings)
        outcome: dict[str, Any] = {
            "dry_run": request.dry_run,
            "api_host": values["api_host"],
            "source": the_plan.source,
            "differences": [d.shown() for d in the_plan.differences],
            "requests": [w.shown() | {"sent": False} for w in the_plan.writes],
        }
        result["apply"] = outcome
        if request.dry_run:
            return result
        try:
            done = apply(client, the_plan, on_done=on_done)
        except PartialApply as exc:
            for shown in outcome["requests"][: len(exc.done)]:
                shown["sent"] = True
            exc.result = result
            raise
        for shown in outcome["requests"][: len(done)]:
            shown["sent"] = True
    if later:
        profile.save_profile(store, name, later)
        result["saved"] = sorted([*result["saved"], *later])
    return result


def show(
    profile_flag: str | None,
    *,
    remote: bool = False,
    token: str | None = None,
    api_host: str | None = None,
    on_wait: Callable[[str], None] | None = None,
    timeout: float = 15.0,
) -> dict[str, Any]:
    """What the profile holds (secrets masked) and, with `remote`, Segment's copy and the
    differences."""
    from cmdai_cli import profile
    from cmdai_cli.public_api import connection_flags, open_client

    resolved = profile.resolve(profile_flag, connection_flags(token, api_host))
    values = resolved.values
    masked = resolved.masked()
    kinds = configured_kinds(values)
    desired = desired_from_values(values, kinds)
    warnings = []
    if values.get("mapping"):
        warnings.extend(mapping_warnings(values["mapping"]))
    result: dict[str, Any] = {
        "profile": resolved.profile,
        "settings": {key: masked.get(key) for key in SHOWN_SETTINGS},
        "destinations": [d.shown() for d in desired],
        "warnings": warnings,
        "remote": None,
        "differences": None,
    }
    if not remote:
        return result
    if not desired:
        raise ConfigError(
            "the profile holds no destination to compare: run `cmdai destination configure "
            "--org-id ...` or `--webhook-url ...` first"
        )
    source_ref = _require_source(values)
    with open_client(values, on_wait, timeout=timeout) as client:
        the_plan = plan(client, source_ref, desired)
    result["warnings"].extend(the_plan.warnings)
    result["remote"] = {"source": the_plan.source, "destinations": the_plan.remote}
    result["differences"] = [d.shown() for d in the_plan.differences if d.action != "same"]
    result["in_sync"] = not the_plan.changes
    return result
