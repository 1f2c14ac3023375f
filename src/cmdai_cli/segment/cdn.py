"""A write key checked where Segment keeps it: the source's settings on Segment's CDN.

Segment's Tracking API answers 200 to any write key and drops the data later
(segmentio/analytics-go issue 205; analytics-node issues 59 and 235: "the edge is
stateless"), so sending proves nothing about a key. The CDN does know it: analytics.js
loads `GET {cdnURL}/v1/projects/{writeKey}/settings` before anything else
(`@segment/analytics-next`, `packages/browser/src/browser/index.ts`, `loadCDNSettings`;
default cdnURL `https://cdn.segment.com`), and an unknown key answers 404.

The document names the Tracking API host (`integrations["Segment.io"].apiHost`, e.g.
`api.segment.io/v1` or `events.eu1.segmentapis.com/v1`, which tells the region) and
every device-mode Actions destination enabled on the source (`remotePlugins`: `name`,
`creationName`, `libraryName`, `url`, `settings`; analytics-next's
`packages/browser/src/plugins/remote-loader/index.ts`). The Command AI destination's
settings hold `orgId` (segmentio/action-destinations,
`packages/browser-destinations/destinations/commandbar/src/index.ts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
import orjson

from cmdai_cli import http_errors, http_policy, redact

CDN_HOST = "https://cdn.segment.com"
# The Tracking API host of each region, as the settings document names it.
REGION_API_HOSTS = {"api.segment.io": "us", "events.eu1.segmentapis.com": "eu"}
# How the Command AI destination appears in `remotePlugins` (its definition's name and
# its package, `@segment/analytics-browser-actions-commandbar`).
COMMANDAI_NAMES = ("Command AI", "CommandBar")
COMMANDAI_LIBRARY = "commandbar"

Status = Literal["verified", "unknown", "unverified"]


@dataclass(frozen=True)
class SourceDestination:
    """One destination enabled on the source in device mode (`remotePlugins` entry)."""

    name: str
    creation_name: str
    library_name: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_commandai(self) -> bool:
        names = (self.name, self.creation_name)
        return any(n in COMMANDAI_NAMES for n in names) or COMMANDAI_LIBRARY in self.library_name

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "creationName": self.creation_name}


@dataclass(frozen=True)
class SourceSettings:
    """What the CDN says of a source: its Tracking API host and its destinations."""

    api_host: str | None
    region: str | None
    destinations: tuple[SourceDestination, ...]

    def commandai(self) -> SourceDestination | None:
        return next((d for d in self.destinations if d.is_commandai), None)


@dataclass(frozen=True)
class KeyCheck:
    """The CDN's verdict on a write key.

    `verified`: a source has this key (`settings` says what it holds); `unknown`: the
    CDN answered 404, no source has it; `unverified`: the CDN could not be asked or
    answered something else (`detail` says what).
    """

    status: Status
    cdn_host: str
    settings: SourceSettings | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"status": self.status, "cdn_host": self.cdn_host}
        if self.settings is not None:
            result["api_host"] = self.settings.api_host
            result["region"] = self.settings.region
            result["destinations"] = [d.as_dict() for d in self.settings.destinations]
        if self.detail:
            result["detail"] = self.detail
        return result


def region_of(api_host: str | None) -> str | None:
    """The region whose Tracking API is `api_host` (with or without scheme and path)."""
    if not api_host:
        return None
    text = api_host if "://" in api_host else "//" + api_host
    return REGION_API_HOSTS.get((urlsplit(text).hostname or "").lower())


def parse_settings(document: Any) -> SourceSettings:
    """The parts of a CDN settings document cmdai uses; ValueError if it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("integrations"), dict):
        raise ValueError("the answer is not a source's settings (no integrations object)")
    segment = document["integrations"].get("Segment.io")
    api_host = segment.get("apiHost") if isinstance(segment, dict) else None
    api_host = api_host if isinstance(api_host, str) else None
    found = []
    plugins = document.get("remotePlugins")
    for plugin in plugins if isinstance(plugins, list) else []:
        if not isinstance(plugin, dict):
            continue
        settings = plugin.get("settings")
        found.append(
            SourceDestination(
                name=str(plugin.get("name") or ""),
                creation_name=str(plugin.get("creationName") or ""),
                library_name=str(plugin.get("libraryName") or ""),
                settings=settings if isinstance(settings, dict) else {},
            )
        )
    return SourceSettings(api_host, region_of(api_host), tuple(found))


def settings_url(cdn_host: str, write_key: str) -> str:
    return f"{cdn_host.rstrip('/')}/v1/projects/{quote(write_key, safe='')}/settings"


def check_write_key(write_key: str, cdn_host: str = CDN_HOST, timeout: float = 10.0) -> KeyCheck:
    """Ask the CDN for the source with `write_key`, within `timeout` seconds in all.

    Never raises for the network; an answer over `http_policy.CDN_SETTINGS_LIMIT` raises
    `http_policy.AnswerTooLarge` (exit 5). A redirect is not followed (the key is in the
    URL) and leaves the key unverified.
    """
    redact.register(write_key)
    service = f"Segment's CDN at {cdn_host}"
    try:
        with http_policy.client(timeout=timeout) as client:
            response = http_policy.send(
                client,
                "GET",
                settings_url(cdn_host, write_key),
                service=service,
                limit=http_policy.CDN_SETTINGS_LIMIT,
                seconds=timeout,
            )
    except httpx.TimeoutException:
        detail = f"{cdn_host} did not answer within {timeout:g} s"
        return KeyCheck("unverified", cdn_host, detail=detail)
    except (httpx.HTTPError, OSError) as exc:
        detail = redact.scrub(f"{cdn_host} could not be reached: {exc}")
        return KeyCheck("unverified", cdn_host, detail=detail)
    if response.status_code == 404:
        return KeyCheck("unknown", cdn_host, detail=f"{cdn_host} knows no source with this key")
    if response.is_redirect or 300 <= response.status_code < 400:
        error = http_errors.error_for_response(
            response.status_code, response.headers, b"", service=cdn_host
        )
        return KeyCheck("unverified", cdn_host, detail=error.message)
    if response.status_code != 200:
        detail = f"{cdn_host} answered {response.status_code}"
        return KeyCheck("unverified", cdn_host, detail=detail)
    try:
        settings = parse_settings(orjson.loads(response.content))
    except (orjson.JSONDecodeError, ValueError) as exc:
        return KeyCheck("unverified", cdn_host, detail=f"{cdn_host}: {exc}")
    return KeyCheck("verified", cdn_host, settings)
