"""From what Segment has to what it should have: `find_changes` reads and lists the writes.

`find_changes` returns a `ChangeSet`: the differences and the writes (`Change`), which
`apply` (destination/apply.py) sends. A second change set after a complete apply is
empty, and one after a part-way apply holds exactly the writes still missing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cmdai_cli import redact
from cmdai_cli.errors import (
    RemoteRefused,
    UsageError,
)

if TYPE_CHECKING:
    from cmdai_cli.public_api import PublicApi
from cmdai_cli.destination.desired import (
    COMMANDAI,
    Destination,
    Subscription,
    mask_keys,
)

# ---------------------------------------------------------------- changes


@dataclass(frozen=True)
class Change:
    """One write request; `needs` names a destination created earlier in the same change set."""

    method: str
    path: str
    body: dict[str, Any]
    what: str
    alpha: bool = False
    creates: str | None = None
    needs: str | None = None
    secrets: frozenset[str] = frozenset()

    @property
    def shown_path(self) -> str:
        if self.needs:
            return self.path.replace(slot(self.needs), f"<id of the new {self.needs} destination>")
        return self.path

    @property
    def shown_body(self) -> dict[str, Any]:
        """The body with every secret masked, for output."""
        body: dict[str, Any] = mask_keys(self.body, self.secrets)
        return body

    def shown(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.shown_path,
            "body": self.shown_body,
            "what": self.what,
        }


def slot(kind: str) -> str:
    """The placeholder in a write's path for the id of a destination created earlier."""
    return "{" + kind + "}"


@dataclass
class Difference:
    """A resource and how Segment's copy differs from the desired one."""

    resource: str
    action: str  # create, update or same
    fields: list[dict[str, Any]] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        return {"resource": self.resource, "action": self.action, "fields": self.fields}


@dataclass(frozen=True)
class SourceRef:
    """The source the changes are for, as Segment names it."""

    id: Any
    slug: Any
    name: Any

    @property
    def label(self) -> str:
        return f"{self.slug or self.name} ({self.id})"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "slug": self.slug, "name": self.name}


@dataclass(frozen=True)
class RemoteDestination:
    """A destination as Segment holds it (secret settings masked), and its subscriptions
    as Segment lists them."""

    id: str
    name: Any
    enabled: Any
    settings: Any
    subscriptions: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "destination": {
                "id": self.id,
                "name": self.name,
                "enabled": self.enabled,
                "settings": self.settings,
            },
            "subscriptions": self.subscriptions,
        }


@dataclass
class ChangeSet:
    """What Segment holds for the source (`found`: by kind, None when absent), how it
    differs from the desired set-up, and the writes that make them the same."""

    source: SourceRef
    differences: list[Difference]
    changes: list[Change]
    found: dict[str, RemoteDestination | None]
    warnings: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.changes


def _source_ref(source: Mapping[str, Any]) -> SourceRef:
    return SourceRef(source.get("id"), source.get("slug"), source.get("name"))


def find_source(sources: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """The source whose id, slug or name (tried in that order) is `ref`."""
    for key in ("id", "slug", "name"):
        matches = [s for s in sources if s.get(key) == ref]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            slugs = ", ".join(str(s.get("slug") or s.get("id")) for s in matches)
            raise UsageError(f"{len(matches)} sources are named {ref!r} ({slugs}): give its slug")
    known = ", ".join(sorted(str(s.get("slug")) for s in sources)[:10])
    raise RemoteRefused(
        f"no source with id, slug or name {ref!r} in the token's workspace",
        status=404,
        hint=f"sources there: {known}" if known else "the workspace has no sources",
    )


def _metadata_id(destination: Mapping[str, Any]) -> Any:
    metadata = destination.get("metadata")
    if isinstance(metadata, dict) and metadata.get("id"):
        return metadata.get("id")
    return destination.get("metadataId")


class _Reader:
    """The reads of one change set, each done once."""

    def __init__(self, client: PublicApi) -> None:
        self.client = client
        self._subscriptions: dict[str, list[dict[str, Any]]] = {}

    def subscriptions(self, destination_id: str) -> list[dict[str, Any]]:
        if destination_id not in self._subscriptions:
            self._subscriptions[destination_id] = self.client.list_subscriptions(destination_id)
        return self._subscriptions[destination_id]


def _find_remote(
    reader: _Reader, connected: list[dict[str, Any]], desired: Destination, warnings: list[str]
) -> dict[str, Any] | None:
    candidates = [d for d in connected if _metadata_id(d) == desired.metadata_id]
    if not candidates:
        return None
    if desired.kind == COMMANDAI:
        if len(candidates) > 1:
            warnings.append(
                f"the source has {len(candidates)} Command AI destinations; updating "
                f"{candidates[0].get('id')} only"
            )
        return candidates[0]
    # A source may hold many webhook destinations: ours is the one with our name, else
    # the one already posting to the same URL; any other belongs to something else.
    named = [d for d in candidates if d.get("name") == desired.name]
    if named:
        return named[0]
    url = desired.subscriptions[0].settings.get("url")
    for candidate in candidates:
        for sub in reader.subscriptions(str(candidate["id"])):
            settings = sub.get("settings")
            if isinstance(settings, dict) and settings.get("url") == url:
                return candidate
    return None


def _secret_state(value: Any) -> str:
    return "(set)" if value not in (None, "") else "(not set)"


def _compare_destination(
    reader: _Reader,
    connected: list[dict[str, Any]],
    desired: Destination,
    *,
    source_id: str,
    secret_given: bool,
    changeset: ChangeSet,
) -> None:
    remote = _find_remote(reader, connected, desired, changeset.warnings)
    title = desired.title
    if remote is None:
        changeset.found[desired.kind] = None
        body = {
            "sourceId": source_id,
            "metadataId": desired.metadata_id,
            "name": desired.name,
            "enabled": desired.enabled,
            "settings": copy.deepcopy(desired.settings),
        }
        changeset.differences.append(
            Difference(
                title,
                "create",
                [
                    {"field": f"settings.{k}", "remote": None, "desired": v}
                    for k, v in mask_keys(desired.settings, desired.secrets).items()
                ],
            )
        )
        changeset.changes.append(
            Change(
                "POST",
                "/destinations",
                body,
                f"create the {title}",
                creates=desired.kind,
                secrets=desired.secrets,
            )
        )
        for sub in desired.subscriptions:
            changeset.differences.append(Difference(f"{title} subscription {sub.key}", "create"))
            changeset.changes.append(
                Change(
                    "POST",
                    f"/destinations/{slot(desired.kind)}/subscriptions",
                    sub.body(),
                    f"create the {title}'s {sub.key} subscription",
                    alpha=True,
                    needs=desired.kind,
                )
            )
        return

    destination_id = str(remote["id"])
    remote_settings = remote.get("settings") if isinstance(remote.get("settings"), dict) else {}
    assert isinstance(remote_settings, dict)
    changed: list[dict[str, Any]] = []
    send_settings = False
    for key, value in desired.settings.items():
        theirs = remote_settings.get(key)
        if key in desired.secrets:
            # Segment returns secrets masked: they cannot be compared, only replaced when
            # the user gave one now, or filled in when Segment has none.
            if theirs in (None, "") or secret_given:
                changed.append(
                    {
                        "field": f"settings.{key}",
                        "remote": _secret_state(theirs),
                        "desired": redact.mask(value),
                    }
                )
                send_settings = True
        elif theirs != value:
            changed.append({"field": f"settings.{key}", "remote": theirs, "desired": value})
            send_settings = True
    patch: dict[str, Any] = {}
    if send_settings:
        # Every managed setting is sent, so the answer does not depend on whether Segment
        # merges or replaces the settings object; a secret only when it is changing.
        patch["settings"] = {
            k: v
            for k, v in desired.settings.items()
            if k not in desired.secrets or any(c["field"] == f"settings.{k}" for c in changed)
        }
    if remote.get("enabled") is not desired.enabled:
        changed.append(
            {"field": "enabled", "remote": remote.get("enabled"), "desired": desired.enabled}
        )
        patch["enabled"] = desired.enabled
    changeset.differences.append(Difference(title, "update" if patch else "same", changed))
    if patch:
        changeset.changes.append(
            Change(
                "PATCH",
                f"/destinations/{quote(destination_id, safe='')}",
                patch,
                f"update the {title}'s " + ", ".join(c["field"] for c in changed),
                secrets=desired.secrets,
            )
        )

    remote_subs = reader.subscriptions(destination_id)
    changeset.found[desired.kind] = RemoteDestination(
        id=destination_id,
        name=remote.get("name"),
        enabled=remote.get("enabled"),
        settings=mask_keys(remote_settings, desired.secrets),
        subscriptions=[_remote_sub_summary(s) for s in remote_subs],
    )
    used: set[str] = set()
    for sub in desired.subscriptions:
        _compare_subscription(remote_subs, used, sub, destination_id, title, changeset)


def _remote_sub_summary(sub: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": sub.get("id"),
        "name": sub.get("name"),
        "actionId": sub.get("actionId"),
        "trigger": sub.get("trigger"),
        "enabled": sub.get("enabled"),
        "settings": sub.get("settings"),
    }


def _compare_subscription(
    remote_subs: list[dict[str, Any]],
    used: set[str],
    sub: Subscription,
    destination_id: str,
    title: str,
    changeset: ChangeSet,
) -> None:
    resource = f"{title} subscription {sub.key}"
    same_action = [
        s
        for s in remote_subs
        if s.get("actionId") == sub.action_id and str(s.get("id")) not in used
    ]
    named = [s for s in same_action if s.get("name") == sub.name]
    match = (named or same_action)[0] if (named or same_action) else None
    base = f"/destinations/{quote(destination_id, safe='')}/subscriptions"
    if match is None:
        changeset.differences.append(Difference(resource, "create"))
        changeset.changes.append(
            Change("POST", base, sub.body(), f"create the {title}'s {sub.key} subscription", True)
        )
        return
    used.add(str(match.get("id")))
    changes: dict[str, Any] = {}
    fields = []
    for key, value in (("trigger", sub.trigger), ("enabled", sub.enabled)):
        if match.get(key) != value:
            changes[key] = copy.deepcopy(value)
            fields.append({"field": key, "remote": match.get(key), "desired": value})
    settings = managed_settings_change(match.get("settings"), sub.settings)
    if settings is not None:
        changes["settings"], changed = settings
        fields.extend(changed)
    changeset.differences.append(Difference(resource, "update" if changes else "same", fields))
    if changes:
        changeset.changes.append(
            Change(
                "PATCH",
                f"{base}/{quote(str(match.get('id')), safe='')}",
                {"input": changes},
                f"update the {title}'s {sub.key} subscription " + ", ".join(changes),
                alpha=True,
            )
        )


def managed_settings_change(
    remote: Any, desired: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The settings to send when a field cmdai manages differs, with one difference each.

    Only the desired keys are compared. A subscription made in Segment's UI holds more:
    the Webhooks destination's `send` also has `batch_size` and `batch_keys`
    (segmentio/action-destinations,
    `packages/destination-actions/src/destinations/webhook/send/index.ts`) and
    `enable_batching`, which actions-core adds to actions that batch
    (`packages/core/src/destination-kit/types.ts`). The Public API's update replaces the
    settings object, so those are sent back unchanged.
    """
    theirs = remote if isinstance(remote, dict) else {}
    changed = [
        {"field": f"settings.{key}", "remote": theirs.get(key), "desired": value}
        for key, value in desired.items()
        if key not in theirs or theirs[key] != value
    ]
    if not changed:
        return None
    return {**copy.deepcopy(theirs), **copy.deepcopy(dict(desired))}, changed


def find_changes(
    client: PublicApi, source_ref: str, desired: list[Destination], *, secret_given: bool = False
) -> ChangeSet:
    """Read Segment's state for `source_ref` and list the writes that reach `desired`.

    `secret_given`: the user gave a shared secret now, so it is written even though the
    masked copy Segment holds cannot be compared with it.
    """
    source = find_source(client.list_sources(), source_ref)
    source_id = str(source["id"])
    connected = client.list_connected_destinations(source_id)
    result = ChangeSet(_source_ref(source), [], [], {})
    reader = _Reader(client)
    for destination in desired:
        _compare_destination(
            reader,
            connected,
            destination,
            source_id=source_id,
            secret_given=secret_given,
            changeset=result,
        )
    return result
