"""What the Public API says about a source, as typed values: volume, destinations,
delivery and filters. Each function is one kind of request; nothing here judges.

Shapes and paths are those of segmentio/public-api-sdk-python (docs/EventsApi.md,
docs/DeliveryOverviewApi.md, docs/DestinationFiltersApi.md, docs/SourcesApi.md) and
docs.segmentapis.com.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cmdai_cli.destination.desired import COMMANDAI_METADATA_ID, WEBHOOKS_METADATA_ID
from cmdai_cli.errors import RemoteRefused
from cmdai_cli.public_api import BETA_MEDIA_TYPE, SERVICE, PublicApi
from cmdai_cli.workspace.window import Window, iso

# The six Delivery Overview steps, in the order an event passes them. The first three
# need only the source; the last three also the destination (`destinationConfigId`).
STEPS = (
    "successfully-received",
    "failed-on-ingest",
    "filtered-at-source",
    "filtered-at-destination",
    "failed-delivery",
    "successful-delivery",
)
SOURCE_STEPS = STEPS[:3]
# Successful deliveries grouped by `discardReason` come as `successes.attempt.N`
# (public-api-sdk-python docs/DeliveryOverviewApi.md, successful-delivery `filter`).
ATTEMPT = re.compile(r"successes\.attempt\.(\d+)$")
KINDS = {COMMANDAI_METADATA_ID: "commandai", WEBHOOKS_METADATA_ID: "webhook"}


@dataclass(frozen=True)
class Point:
    time: str
    count: int


@dataclass(frozen=True)
class EventVolume:
    """One event name's volume (`SourceEventVolumeV1`): valid events after validation."""

    event_name: str | None
    event_type: str | None
    total: int
    series: tuple[Point, ...]

    @property
    def name(self) -> str:
        """What to call it: its name, or `(identify)` and the like for nameless types."""
        return self.event_name or f"({self.event_type or 'unknown'})"

    @property
    def last_seen(self) -> str | None:
        """The start of the last bucket with a count, which is as close as Segment says."""
        seen = [point.time for point in self.series if point.count > 0]
        return max(seen) if seen else None


@dataclass(frozen=True)
class Destination:
    id: str
    name: str
    kind: str  # commandai | webhook | other
    enabled: bool
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class Row:
    """One row of a Delivery Overview `dataset`."""

    event_name: str | None
    event_type: str | None
    discard_reason: str | None
    total: int
    retry_count: int


@dataclass(frozen=True)
class Step:
    name: str
    total: int
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Filter:
    """A destination filter (`DestinationFilterV1`)."""

    id: str
    title: str
    destination_id: str
    condition: str
    actions: tuple[Mapping[str, Any], ...]
    enabled: bool


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def sources(api: PublicApi) -> list[dict[str, Any]]:
    return api.list_sources()


def source_for_write_key(found: list[dict[str, Any]], write_key: str) -> dict[str, Any] | None:
    """The source holding `write_key` among `found` (`GET /sources` lists `writeKeys`)."""
    for source in found:
        keys = source.get("writeKeys")
        if isinstance(keys, list) and write_key in keys:
            return source
    return None


def event_volume(api: PublicApi, source_id: str, window: Window) -> tuple[list[EventVolume], int]:
    """`GET /events/volume` for one source, grouped by event name and type, every page;
    and how many requests (pages) that took.

    `startTime` is inclusive and `endTime` exclusive; arrays go as repeated parameters.
    """
    params = {
        "granularity": window.api_granularity,
        "startTime": iso(window.start),
        "endTime": iso(window.end),
        "groupBy": ["eventName", "eventType"],
        "sourceId": [source_id],
    }
    found = []
    pages = 0
    for data in api.page_data("/events/volume", params=params):
        pages += 1
        result = data.get("result")
        if result is not None and not isinstance(result, list):
            raise RemoteRefused(f"{SERVICE}: GET /events/volume: 'data.result' is not a list")
        found += [_volume(item) for item in result or [] if isinstance(item, dict)]
    return found, pages


def _volume(item: Mapping[str, Any]) -> EventVolume:
    series = item.get("series")
    points = tuple(
        Point(str(p.get("time")), _int(p.get("count")))
        for p in (series if isinstance(series, list) else [])
        if isinstance(p, dict)
    )
    return EventVolume(
        _text(item.get("eventName")), _text(item.get("eventType")), _int(item.get("total")), points
    )


def connected_destinations(api: PublicApi, source_id: str) -> list[Destination]:
    found = []
    for item in api.list_connected_destinations(source_id):
        metadata = item.get("metadata")
        metadata_id = metadata.get("id") if isinstance(metadata, dict) else None
        settings = item.get("settings")
        found.append(
            Destination(
                str(item.get("id")),
                str(item.get("name") or ""),
                KINDS.get(str(metadata_id), "other"),
                item.get("enabled") is True,
                settings if isinstance(settings, dict) else {},
            )
        )
    return found


def webhook_urls(api: PublicApi, destination_id: str) -> list[str]:
    """The URLs the Webhooks destination's subscriptions post to (a literal `url` setting)."""
    urls = []
    for sub in api.list_subscriptions(destination_id):
        settings = sub.get("settings")
        url = settings.get("url") if isinstance(settings, dict) else None
        if isinstance(url, str):
            urls.append(url)
    return urls


def delivery_step(
    api: PublicApi,
    step: str,
    source_id: str,
    destination_id: str | None,
    window: Window,
    *,
    group_by: str | None = None,
) -> Step:
    """One Delivery Overview step (beta media type), every page of its `dataset`."""
    params: dict[str, Any] = {
        "sourceId": source_id,
        "startTime": iso(window.start),
        "endTime": iso(window.end),
        "granularity": window.api_granularity,
    }
    if step not in SOURCE_STEPS:
        params["destinationConfigId"] = destination_id
    if group_by:
        params["groupBy"] = [group_by]
    total: int | None = None
    rows: list[Row] = []
    for data in api.page_data(f"/delivery-overview/{step}", params=params, media=BETA_MEDIA_TYPE):
        if total is None:
            total = _int(data.get("total"))
        dataset = data.get("dataset")
        if dataset is not None and not isinstance(dataset, list):
            raise RemoteRefused(
                f"{SERVICE}: GET /delivery-overview/{step}: 'dataset' is not a list"
            )
        for item in dataset or []:
            if isinstance(item, dict):
                rows.append(
                    Row(
                        _text(item.get("eventName")),
                        _text(item.get("eventType")),
                        _text(item.get("discardReason")),
                        _int(item.get("total")),
                        _int(item.get("totalRetryCount")),
                    )
                )
    return Step(step, total or 0, tuple(rows))


def retried(step: Step) -> int:
    """Successful deliveries that took more than one attempt."""
    count = 0
    for row in step.rows:
        match = ATTEMPT.match(row.discard_reason or "")
        if match and int(match.group(1)) > 1:
            count += row.total
    return count


def filters(api: PublicApi, destination_id: str) -> list[Filter]:
    """`GET /destination/{destinationId}/filters` (singular `destination`, as Segment spells it)."""
    found = []
    path = f"/destination/{quote(destination_id, safe='')}/filters"
    for item in api.pages(path, "filters"):
        actions = item.get("actions")
        found.append(
            Filter(
                str(item.get("id")),
                str(item.get("title") or ""),
                destination_id,
                str(item.get("if") or ""),
                tuple(
                    a for a in (actions if isinstance(actions, list) else []) if isinstance(a, dict)
                ),
                item.get("enabled") is True,
            )
        )
    return found


def drops(api: PublicApi, rule: Filter, payload: Mapping[str, Any]) -> bool:
    """Whether `rule` drops `payload`: `POST /destination/filters/preview` answers the
    payload as the filter leaves it in `result`, and nothing when it is dropped."""
    data = api.call(
        "POST",
        "/destination/filters/preview",
        body={"filter": {"if": rule.condition, "actions": list(rule.actions)}, "payload": payload},
    )
    return not data.get("result")
