"""What the Command AI and webhook destinations should be, in Segment's terms.

Org ID rule: 1 to 64 characters of ASCII letters, digits, `-` and `_`. The id becomes a
path segment of Command AI's script URL (`https://api.commandbar.com/latest/{orgId}`), so
anything else (spaces, slashes, dots, quotes) cannot be a working id.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cmdai_cli import redact
from cmdai_cli.errors import (
    ConfigError,
    DataError,
    UsageError,
)
from cmdai_cli.mapping.file import load_mapping_file
from cmdai_cli.mapping.webhook import RECOMMENDED, WebhookMapping, parse_mapping
from cmdai_cli.values import check_url

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

    @property
    def shown_settings(self) -> dict[str, Any]:
        """The settings with every secret masked, for output."""
        settings: dict[str, Any] = mask_keys(self.settings, self.secrets)
        return settings

    def shown(self) -> dict[str, Any]:
        """The configuration with every secret setting masked, for output."""
        return {
            "kind": self.kind,
            "destination": {
                "metadataId": self.metadata_id,
                "name": self.name,
                "enabled": self.enabled,
                "settings": self.shown_settings,
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

    parsed = parse_mapping(table, source=source)
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
        return dict(RECOMMENDED.table), "recommended"

    return dict(load_mapping_file(spec).table), spec


def check_webhook_url(url: str) -> str:

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
