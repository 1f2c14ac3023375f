"""Segment destinations for Command AI: what they should be, what Segment has, and the writes
that make the one into the other.

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

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cmdai_cli import redact
from cmdai_cli.errors import (
    CmdaiError,
    ConfigError,
    DataError,
    PartialFailure,
    RemoteRefused,
    UsageError,
)

if TYPE_CHECKING:
    from cmdai_cli.mapping import WebhookMapping
    from cmdai_cli.public_api import PublicApi

COMMANDAI_METADATA_ID = "638f843c4520d424f63c9e51"
IDENTIFY_ACTION_ID = "pvLKevrkEtiUZX3ej5FX8j"
TRACK_ACTION_ID = "5cVhYfBJYs4sCSvLLoahGc"
WEBHOOKS_METADATA_ID = "614a3c7d791c91c41bae7599"
SEND_ACTION_ID = "nFPnRozhz1mh4Gbx4MLvT5"

COMMANDAI = "commandai"
WEBHOOK = "webhook"
COMMANDAI_NAME = "Command AI"
WEBHOOK_NAME = "Command AI webhook"
DEFAULT_WEBHOOK_TRIGGER = 'type = "identify"'

# Only these body fields make Command AI's webhook record anything.
EFFECTIVE_FIELDS = ("userId", "traits", "user_property_event")
USER_PROPERTY_PREFIX = "user_property."

ORG_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# ---------------------------------------------------------------- the desired configuration


def check_org_id(value: str) -> str:
    """A Command AI org ID as typed (surrounding spaces removed), or UsageError."""
    org_id = value.strip()
    if not org_id:
        raise UsageError("the org ID is empty")
    if not ORG_ID_RE.match(org_id):
        raise UsageError(
            f"org ID {org_id!r} is not valid: use 1 to 64 letters, digits, '-' or '_' "
            "(copy it from Command AI: click your organization name, top right)"
        )
    return org_id


@dataclass(frozen=True)
class Subscription:
    """One Actions subscription: an action, the FQL trigger, and its field settings."""

    key: str
    name: str
    action_id: str
    trigger: str
    settings: dict[str, Any]
    enabled: bool = True

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "actionId": self.action_id,
            "trigger": self.trigger,
            "enabled": self.enabled,
            "settings": copy.deepcopy(self.settings),
        }

    def shown(self) -> dict[str, Any]:
        return {"action": self.key, **self.body()}


@dataclass(frozen=True)
class Destination:
    """One destination as Segment should hold it; `secrets` name masked settings."""

    kind: str
    title: str
    metadata_id: str
    name: str
    settings: dict[str, Any]
    subscriptions: tuple[Subscription, ...]
    secrets: frozenset[str] = frozenset()
    enabled: bool = True

    def shown(self) -> dict[str, Any]:
        """The configuration with every secret setting masked, for output."""
        return {
            "kind": self.kind,
            "destination": {
                "metadataId": self.metadata_id,
                "name": self.name,
                "enabled": self.enabled,
                "settings": mask_keys(self.settings, self.secrets),
            },
            "subscriptions": [sub.shown() for sub in self.subscriptions],
        }


def mask_keys(value: Any, keys: Iterable[str]) -> Any:
    """A deep copy of `value` with the value of every key named in `keys` masked."""
    names = set(keys)
    if isinstance(value, dict):
        return {
            k: (redact.mask(v) if k in names and isinstance(v, str) else mask_keys(v, names))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_keys(v, names) for v in value]
    return value


def commandai_destination(org_id: str, deploy: bool) -> Destination:
    """The Command AI destination with its two subscriptions and their default mappings."""
    identify = Subscription(
        key="identifyUser",
        name="Identify User",
        action_id=IDENTIFY_ACTION_ID,
        trigger='type = "identify"',
        settings={
            "userId": {"@path": "$.userId"},
            "hmac": {"@path": "$.context.CommandBar.hmac"},
            "formFactor": {"@path": "$.context.CommandBar.formFactor"},
            "traits": {"@path": "$.traits"},
        },
    )
    track = Subscription(
        key="trackEvent",
        name="Track Event",
        action_id=TRACK_ACTION_ID,
        trigger='type = "track"',
        settings={
            "event_name": {"@path": "$.event"},
            "event_metadata": {"@path": "$.properties"},
        },
    )
    return Destination(
        kind=COMMANDAI,
        title="Command AI destination",
        metadata_id=COMMANDAI_METADATA_ID,
        name=COMMANDAI_NAME,
        settings={"orgId": check_org_id(org_id), "deploy": bool(deploy)},
        subscriptions=(identify, track),
    )


def mapping_warnings(table: Mapping[str, Any]) -> list[str]:
    """One warning per body field that Command AI's webhook ignores."""
    warnings = []
    for name in table:
        effective = name in EFFECTIVE_FIELDS or (
            name.startswith(USER_PROPERTY_PREFIX) and len(name) > len(USER_PROPERTY_PREFIX)
        )
        if not effective:
            warnings.append(
                f"mapping key {name!r} has no effect on Command AI: only userId, traits, "
                "user_property.<name> and user_property_event are recorded"
            )
    return warnings


def check_webhook_mapping(
    table: Mapping[str, Any] | None, *, source: str
) -> tuple[WebhookMapping, list[str]]:
    """A validated webhook mapping and its warnings; DataError when it cannot work.

    An absent or empty table is the recommended set-up (the whole event is sent, so the
    event's own `userId` is there); a custom table must map `userId`.
    """
    from cmdai_cli import mapping

    parsed = mapping.parse_mapping(table, source=source)
    if parsed.whole_event:
        return parsed, []
    if "userId" not in parsed.table:
        raise DataError(
            "the mapping must map userId (Command AI ignores a body without one), "
            'for example: userId = "$.userId"',
            source=source,
            field="userId",
        )
    return parsed, mapping_warnings(parsed.table)


def load_mapping_spec(spec: str) -> tuple[dict[str, Any], str]:
    """`recommended` or a TOML file's `[mapping]` table, and where it came from."""
    if spec == "recommended":
        from cmdai_cli import mapping

        return dict(mapping.RECOMMENDED.table), "recommended"
    from cmdai_cli import mapping_file

    return dict(mapping_file.load_mapping_file(spec).table), spec


def check_webhook_url(url: str) -> str:
    from cmdai_cli.profile import check_url

    return check_url(url, what="webhook URL", base=False)


def webhook_destination(
    url: str,
    shared_secret: str | None,
    table: Mapping[str, Any] | None,
    trigger: str | None,
    *,
    source: str = "<mapping>",
) -> Destination:
    """The Webhooks (Actions) destination posting to Command AI with one `send`."""
    parsed, _ = check_webhook_mapping(table, source=source)
    trigger_text = (trigger or DEFAULT_WEBHOOK_TRIGGER).strip()
    if not trigger_text:
        raise UsageError('the trigger is empty; give an FQL condition such as type = "track"')
    send = Subscription(
        key="send",
        name="Send to Command AI",
        action_id=SEND_ACTION_ID,
        trigger=trigger_text,
        settings={
            "url": check_webhook_url(url),
            "method": "POST",
            "data": parsed.to_segment_data(),
        },
    )
    settings: dict[str, Any] = {}
    if shared_secret:
        redact.register(shared_secret)
        settings["sharedSecret"] = shared_secret
    return Destination(
        kind=WEBHOOK,
        title="Webhooks destination",
        metadata_id=WEBHOOKS_METADATA_ID,
        name=WEBHOOK_NAME,
        settings=settings,
        subscriptions=(send,),
        secrets=frozenset({"sharedSecret"}),
    )


def desired_from_values(values: Mapping[str, Any], kinds: Iterable[str]) -> list[Destination]:
    """The destinations of `kinds` from resolved profile values."""
    desired = []
    for kind in kinds:
        if kind == COMMANDAI:
            org_id = values.get("org_id")
            if not org_id:
                raise ConfigError(
                    "no org ID is set: give --org-id, set $CMDAI_ORG_ID, or store org_id "
                    "in the profile"
                )
            desired.append(commandai_destination(org_id, bool(values.get("deploy_via_segment"))))
        elif kind == WEBHOOK:
            url = values.get("webhook_url")
            if not url:
                raise ConfigError(
                    "no webhook URL is set: give --webhook-url or store webhook_url in the profile"
                )
            desired.append(
                webhook_destination(
                    url,
                    values.get("webhook_shared_secret"),
                    values.get("mapping"),
                    values.get("webhook_trigger"),
                    source="profile mapping",
                )
            )
    return desired


def configured_kinds(values: Mapping[str, Any]) -> list[str]:
    kinds = []
    if values.get("org_id"):
        kinds.append(COMMANDAI)
    if values.get("webhook_url"):
        kinds.append(WEBHOOK)
    return kinds


# ---------------------------------------------------------------- plan


@dataclass(frozen=True)
class Write:
    """One write request; `needs` names a destination created earlier in the same plan."""

    method: str
    path: str
    body: dict[str, Any]
    what: str
    alpha: bool = False
    creates: str | None = None
    needs: str | None = None
    secrets: frozenset[str] = frozenset()

    def shown(self) -> dict[str, Any]:
        path = self.path
        if self.needs:
            path = path.replace(_slot(self.needs), f"<id of the new {self.needs} destination>")
        return {
            "method": self.method,
            "path": path,
            "body": mask_keys(self.body, self.secrets),
            "what": self.what,
        }


def _slot(kind: str) -> str:
    return "{" + kind + "}"


@dataclass
class Difference:
    """A resource and how Segment's copy differs from the desired one."""

    resource: str
    action: str  # create, update or same
    fields: list[dict[str, Any]] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        return {"resource": self.resource, "action": self.action, "fields": self.fields}


@dataclass
class Plan:
    source: dict[str, Any]
    differences: list[Difference]
    writes: list[Write]
    remote: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.writes)


def _source_summary(source: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": source.get("id"), "slug": source.get("slug"), "name": source.get("name")}


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
    """The reads of one plan, each done once."""

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


def _plan_destination(
    reader: _Reader,
    connected: list[dict[str, Any]],
    desired: Destination,
    *,
    source_id: str,
    secret_given: bool,
    plan: Plan,
) -> None:
    remote = _find_remote(reader, connected, desired, plan.warnings)
    title = desired.title
    if remote is None:
        plan.remote[desired.kind] = None
        body = {
            "sourceId": source_id,
            "metadataId": desired.metadata_id,
            "name": desired.name,
            "enabled": desired.enabled,
            "settings": copy.deepcopy(desired.settings),
        }
        plan.differences.append(
            Difference(
                title,
                "create",
                [
                    {"field": f"settings.{k}", "remote": None, "desired": v}
                    for k, v in mask_keys(desired.settings, desired.secrets).items()
                ],
            )
        )
        plan.writes.append(
            Write(
                "POST",
                "/destinations",
                body,
                f"create the {title}",
                creates=desired.kind,
                secrets=desired.secrets,
            )
        )
        for sub in desired.subscriptions:
            plan.differences.append(Difference(f"{title} subscription {sub.key}", "create"))
            plan.writes.append(
                Write(
                    "POST",
                    f"/destinations/{_slot(desired.kind)}/subscriptions",
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
    plan.differences.append(Difference(title, "update" if patch else "same", changed))
    if patch:
        plan.writes.append(
            Write(
                "PATCH",
                f"/destinations/{quote(destination_id, safe='')}",
                patch,
                f"update the {title}'s " + ", ".join(c["field"] for c in changed),
                secrets=desired.secrets,
            )
        )

    remote_subs = reader.subscriptions(destination_id)
    plan.remote[desired.kind] = {
        "destination": {
            "id": destination_id,
            "name": remote.get("name"),
            "enabled": remote.get("enabled"),
            "settings": mask_keys(remote_settings, desired.secrets),
        },
        "subscriptions": [_remote_sub_summary(s) for s in remote_subs],
    }
    used: set[str] = set()
    for sub in desired.subscriptions:
        _plan_subscription(remote_subs, used, sub, destination_id, title, plan)


def _remote_sub_summary(sub: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": sub.get("id"),
        "name": sub.get("name"),
        "actionId": sub.get("actionId"),
        "trigger": sub.get("trigger"),
        "enabled": sub.get("enabled"),
        "settings": sub.get("settings"),
    }


def _plan_subscription(
    remote_subs: list[dict[str, Any]],
    used: set[str],
    sub: Subscription,
    destination_id: str,
    title: str,
    plan: Plan,
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
        plan.differences.append(Difference(resource, "create"))
        plan.writes.append(
            Write("POST", base, sub.body(), f"create the {title}'s {sub.key} subscription", True)
        )
        return
    used.add(str(match.get("id")))
    changes: dict[str, Any] = {}
    fields = []
    for key, value in (
        ("trigger", sub.trigger),
        ("enabled", sub.enabled),
        ("settings", sub.settings),
    ):
        if match.get(key) != value:
            changes[key] = copy.deepcopy(value)
            fields.append({"field": key, "remote": match.get(key), "desired": value})
    plan.differences.append(Difference(resource, "update" if changes else "same", fields))
    if changes:
        plan.writes.append(
            Write(
                "PATCH",
                f"{base}/{quote(str(match.get('id')), safe='')}",
                {"input": changes},
                f"update the {title}'s {sub.key} subscription " + ", ".join(changes),
                alpha=True,
            )
        )


def plan(
    client: PublicApi, source_ref: str, desired: list[Destination], *, secret_given: bool = False
) -> Plan:
    """Read Segment's state for `source_ref` and list the writes that reach `desired`.

    `secret_given`: the user gave a shared secret now, so it is written even though the
    masked copy Segment holds cannot be compared with it.
    """
    source = find_source(client.list_sources(), source_ref)
    source_id = str(source["id"])
    connected = client.list_connected_destinations(source_id)
    result = Plan(_source_summary(source), [], [], {})
    reader = _Reader(client)
    for destination in desired:
        _plan_destination(
            reader,
            connected,
            destination,
            source_id=source_id,
            secret_given=secret_given,
            plan=result,
        )
    return result


# ---------------------------------------------------------------- apply


class PartialApply(PartialFailure):
    """Some writes were sent and one failed; the rest were not sent."""

    def __init__(self, done: list[Write], not_done: list[Write], cause: CmdaiError) -> None:
        self.done = done
        self.not_done = not_done
        self.cause = cause
        message = (
            f"stopped part-way: {cause.message}. Done: "
            + ("; ".join(w.what for w in done) or "nothing")
            + ". Not done: "
            + ("; ".join(w.what for w in not_done) or "nothing else")
            + ". Run the same command again to finish"
        )
        self.result: dict[str, Any] | None = None
        super().__init__(message, hint=cause.hint)


def apply(
    client: PublicApi, the_plan: Plan, *, on_done: Callable[[Write], None] | None = None
) -> list[Write]:
    """Send the plan's writes in order; the writes done, or PartialApply / the first error."""
    ids: dict[str, str] = {}
    done: list[Write] = []
    for index, write in enumerate(the_plan.writes):
        path = write.path
        if write.needs:
            path = path.replace(_slot(write.needs), quote(ids[write.needs], safe=""))
        try:
            data = client.call(write.method, path, body=write.body, alpha=write.alpha)
            if write.creates:
                created = data.get("destination")
                new_id = created.get("id") if isinstance(created, dict) else None
                if not new_id:
                    done.append(write)
                    raise PartialApply(
                        done,
                        the_plan.writes[index + 1 :],
                        RemoteRefused(
                            f"Segment created the {write.creates} destination but did not "
                            "say its id"
                        ),
                    )
                ids[write.creates] = str(new_id)
        except PartialApply:
            raise
        except CmdaiError as exc:
            if not done:
                raise
            raise PartialApply(done, the_plan.writes[index:], exc) from None
        done.append(write)
        if on_done is not None:
            on_done(write)
    return done


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


def open_client(values: Mapping[str, Any], on_wait: Callable[[str], None] | None) -> PublicApi:
    from cmdai_cli.public_api import PublicApi

    token = values.get("public_api_token")
    if not token:
        raise ConfigError(
            "no Segment Public API token: give --token, set $CMDAI_PUBLIC_API_TOKEN, or "
            "store public_api_token in the profile"
        )
    return PublicApi(str(values["api_host"]), str(token), on_wait=on_wait)


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
        if not request.trigger.strip():
            raise UsageError('the trigger is empty; give an FQL condition such as type = "track"')
        updates["webhook_trigger"] = request.trigger.strip()
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
    flags = dict(updates)
    if request.token is not None:
        redact.register(request.token)
        flags["public_api_token"] = request.token
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
    with open_client(values, on_wait) as client:
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
) -> dict[str, Any]:
    """What the profile holds (secrets masked) and, with `remote`, Segment's copy and the
    differences."""
    from cmdai_cli import profile

    flags: dict[str, Any] = {}
    if token is not None:
        redact.register(token)
        flags["public_api_token"] = token
    if api_host is not None:
        flags["api_host"] = profile.check_url(api_host, what="--api-host")
    resolved = profile.resolve(profile_flag, flags)
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
    with open_client(values, on_wait) as client:
        the_plan = plan(client, source_ref, desired)
    result["warnings"].extend(the_plan.warnings)
    result["remote"] = {"source": the_plan.source, "destinations": the_plan.remote}
    result["differences"] = [d.shown() for d in the_plan.differences if d.action != "same"]
    result["in_sync"] = not the_plan.changes
    return result
