"""Segment destinations for Command AI: what they should be (`desired`), what Segment has,
and the writes that make the one into the other (`changes`); here, the command's core.

Two destinations can be configured on a Segment source:

* the **Command AI** (CommandBar) device-mode destination, settings `orgId` and `deploy`,
  with the subscriptions `identifyUser` (on identify) and `trackEvent` (on track);
* a **Webhooks (Actions)** destination posting to Command AI's webhook, with a shared
  secret and one `send` subscription whose `data` is built from a `[mapping]` table.

`find_changes` only reads; it returns the differences and the list of writes. `apply` sends the
writes in order and, when one fails after others succeeded, says which were done and
which were not. Both are idempotent by construction: a second change set after a
complete apply is empty, and one after a part-way apply holds exactly the writes still
missing.

Org ID rule: 1 to 64 characters of ASCII letters, digits, `-` and `_`. The id becomes a
path segment of Command AI's script URL (`https://api.commandbar.com/latest/{orgId}`), so
anything else (spaces, slashes, dots, quotes) cannot be a working id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cmdai_cli import redact
from cmdai_cli.destination.apply import PartialApply, apply
from cmdai_cli.destination.changes import Change, ChangeSet, Difference, find_changes
from cmdai_cli.destination.desired import (
    COMMANDAI,
    WEBHOOK,
    Destination,
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
from cmdai_cli.destination.trigger import check_trigger
from cmdai_cli.errors import ConfigError, ExitCode, UsageError
from cmdai_cli.profile import Resolved, Store, save_profile
from cmdai_cli.public_api import open_client
from cmdai_cli.results import Done

__all__ = [
    "Applied",
    "ConfigureRequest",
    "ConfigureResult",
    "PartialApply",
    "ShowRequest",
    "ShowResult",
    "check_org_id",
    "check_webhook_mapping",
    "commandai_destination",
    "configure",
    "show",
    "webhook_destination",
]

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


# ---------------------------------------------------------------- configure


@dataclass(frozen=True)
class ConfigureRequest:
    """What `destination configure` was asked: the run's settings, resolved once, and the
    set-up to store, as given (None: not given)."""

    settings: Resolved
    org_id: str | None = None
    deploy: bool | None = None
    source: str | None = None
    webhook_url: str | None = None
    # Kept out of repr: a secret is never printed in full.
    shared_secret: str | None = field(default=None, repr=False)
    mapping: str | None = None
    trigger: str | None = None
    apply: bool = False
    dry_run: bool = False
    timeout: float = 15.0


@dataclass
class Applied:
    """What `--apply` found on Segment and which of its writes were sent."""

    dry_run: bool
    api_host: str
    changes: ChangeSet
    sent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "api_host": self.api_host,
            "source": self.changes.source.as_json(),
            "differences": [d.shown() for d in self.changes.differences],
            "requests": [
                change.shown() | {"sent": index < self.sent}
                for index, change in enumerate(self.changes.changes)
            ],
        }


@dataclass
class ConfigureResult:
    """What was stored in which profile, the destinations in Segment's terms, and with
    `--apply` what Segment was sent."""

    profile: str
    saved: list[str]
    source: str | None
    destinations: list[Destination]
    warnings: list[str]
    applied: Applied | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "saved": self.saved,
            "source": self.source,
            "destinations": [d.shown() for d in self.destinations],
            "warnings": self.warnings,
            "apply": self.applied.as_json() if self.applied is not None else None,
        }

    @property
    def exit_code(self) -> ExitCode:
        # Every failure to configure is raised (PartialApply carries this result).
        return ExitCode.OK

    @property
    def problem(self) -> str | None:
        return None


@dataclass(frozen=True)
class _Checked:
    """A configure request checked whole: the profile updates it means, their warnings,
    the settings they make, and the destinations those describe."""

    updates: dict[str, Any]
    warnings: list[str]
    values: dict[str, Any]
    destinations: list[Destination]
    # A new shared secret sent with --apply waits to be stored until Segment has it.
    pending: dict[str, Any] = field(default_factory=dict)
    secret_new: bool = False


def _check(request: ConfigureRequest) -> _Checked:
    if request.dry_run and not request.apply:
        raise UsageError("--dry-run goes with --apply: it shows the requests --apply would send")
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
        updates["webhook_trigger"] = check_trigger(request.trigger)
    if request.mapping is not None:
        table, where = load_mapping_spec(request.mapping)
        _, found = check_webhook_mapping(table, source=where)
        warnings.extend(found)
        updates["mapping"] = table
    # What is given now wins over the environment and the profile.
    values = {**request.settings.values, **updates}
    # Segment shows the secret masked, so a new one is written only when it is new to us.
    stored_secret = request.settings.stored.get("webhook_shared_secret")
    secret_new = request.shared_secret is not None and stored_secret != request.shared_secret
    pending = {}
    if secret_new and request.apply:
        # Stored once Segment has it, so that re-running the same command after a
        # failure still knows it has to be sent.
        pending = {"webhook_shared_secret": updates.pop("webhook_shared_secret")}
    destinations = desired_from_values(values, _kinds_asked(request, values))
    return _Checked(updates, warnings, values, destinations, pending, secret_new)


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


def _require_source(values: Mapping[str, Any]) -> str:
    source = values.get("source")
    if not source:
        raise ConfigError(
            "no source is set: give --source (its id, slug or name), set $CMDAI_SOURCE, or "
            "store source in the profile"
        )
    return str(source)


def configure(
    request: ConfigureRequest,
    *,
    on_wait: Callable[[str], None] | None = None,
    on_done: Callable[[Change], None] | None = None,
) -> ConfigureResult:
    """Check the request whole, store it in the profile (not on a dry run), and with
    `apply` find the changes Segment needs and make them.

    On a part-way failure raises PartialApply whose `result` is this result, saying what
    was and was not sent.
    """
    checked = _check(request)
    settings = request.settings
    store = Store(settings.path)
    if checked.updates and not request.dry_run:
        save_profile(store, settings.profile, checked.updates)
    values = checked.values
    result = ConfigureResult(
        profile=settings.profile,
        saved=sorted(checked.updates) if not request.dry_run else [],
        source=values.get("source"),
        destinations=checked.destinations,
        warnings=checked.warnings,
    )
    if not request.apply:
        return result
    source_ref = _require_source(values)
    with open_client(values, on_wait, timeout=request.timeout) as client:
        changes = find_changes(
            client, source_ref, result.destinations, secret_given=checked.secret_new
        )
        result.warnings.extend(changes.warnings)
        result.applied = Applied(request.dry_run, str(values["api_host"]), changes)
        if request.dry_run:
            return result
        try:
            result.applied.sent = len(apply(client, changes, on_done=on_done))
        except PartialApply as exc:
            result.applied.sent = len(exc.done)
            exc.result = result
            raise
    if checked.pending:
        save_profile(store, settings.profile, checked.pending)
        result.saved = sorted([*result.saved, *checked.pending])
    return result


# ---------------------------------------------------------------- show


@dataclass(frozen=True)
class ShowRequest:
    """What `destination show` was asked: the run's settings and whether to read Segment's
    copy."""

    settings: Resolved
    remote: bool = False
    timeout: float = 15.0


@dataclass
class ShowResult(Done):
    """The profile's set-up (secrets masked) and, when read, Segment's copy."""

    profile: str
    settings: dict[str, Any]
    destinations: list[Destination]
    warnings: list[str]
    # Segment's copy compared with the profile's (`--remote`; None: not read).
    compared: ChangeSet | None = None

    @property
    def differences(self) -> list[Difference]:
        if self.compared is None:
            return []
        return [d for d in self.compared.differences if d.action != "same"]

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "profile": self.profile,
            "settings": self.settings,
            "destinations": [d.shown() for d in self.destinations],
            "warnings": self.warnings,
            "remote": None,
            "differences": None,
        }
        if self.compared is not None:
            found = self.compared.found
            document["remote"] = {
                "source": self.compared.source.as_json(),
                "destinations": {
                    kind: None if there is None else there.as_json()
                    for kind, there in found.items()
                },
            }
            document["differences"] = [d.shown() for d in self.differences]
            document["in_sync"] = self.compared.in_sync
        return document


def show(request: ShowRequest, *, on_wait: Callable[[str], None] | None = None) -> ShowResult:
    """What the profile holds (secrets masked) and, with `remote`, Segment's copy and the
    differences."""
    settings = request.settings
    values = settings.values
    masked = settings.masked()
    desired = desired_from_values(values, configured_kinds(values))
    warnings = []
    if values.get("mapping"):
        warnings.extend(mapping_warnings(values["mapping"]))
    result = ShowResult(
        profile=settings.profile,
        settings={key: masked.get(key) for key in SHOWN_SETTINGS},
        destinations=desired,
        warnings=warnings,
    )
    if not request.remote:
        return result
    if not desired:
        raise ConfigError(
            "the profile holds no destination to compare: run `cmdai destination configure "
            "--org-id ...` or `--webhook-url ...` first"
        )
    source_ref = _require_source(values)
    with open_client(values, on_wait, timeout=request.timeout) as client:
        result.compared = find_changes(client, source_ref, desired)
    result.warnings.extend(result.compared.warnings)
    return result
