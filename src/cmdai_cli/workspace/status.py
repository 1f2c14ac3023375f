"""`cmdai status`: is data flowing between Command AI and Segment, judged from the
Public API. One request in (`StatusRequest`), one function (`run`), one result out.

The checks, each pass, fail or skip:
- `events`: the source received at least one event in the window;
- `command ai destination`: the Command AI (CommandBar) destination is on the source,
  enabled, with the profile's orgId;
- `webhook destination`: the Webhooks destination is on the source and enabled, posting to
  the profile's webhook URL (skipped when the profile has no webhook URL and none exists);
- `delivery`: failed deliveries to the Webhooks destination are at most the allowed share;
- `filters`: no enabled destination filter drops an identify like the test event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from cmdai_cli import catalogue, redact
from cmdai_cli.destination.changes import find_source
from cmdai_cli.errors import ConfigError, ExitCode, RemoteRefused
from cmdai_cli.public_api import DEADLINE_FACTOR, PublicApi
from cmdai_cli.retry import RetryPolicy
from cmdai_cli.workspace import readings
from cmdai_cli.workspace.readings import Destination, EventVolume, Filter, Step
from cmdai_cli.workspace.window import Window, iso, window_for

Status = Literal["pass", "fail", "skip"]
DEFAULT_MAX_FAILURE_RATE = 0.05
# The event volume endpoint allows 60 requests a minute (public-api-sdk-python,
# docs/EventsApi.md); a watch spends at most half of that, leaving room for other tools.
VOLUME_REQUESTS_PER_MINUTE = 60
WATCH_SHARE = 0.5
# "Segment's Public API is available for Team and Business tier customers" (segment-docs
# api/config-api/authentication); tokens are per workspace, made under Settings >
# Access Management > Tokens (docs.segmentapis.com, Authentication).
PLAN_HINT = (
    "the Public API needs a Team or Business plan, and a Public API token of this "
    "workspace (Settings > Access Management > Tokens)"
)
DEVICE_MODE_NOTE = (
    "The Command AI (CommandBar) destination runs in the browser (device mode), which "
    "Delivery Overview does not cover: check it with `cmdai listen` as the page's apiHost, "
    "or in the browser's network log (requests to api.commandbar.com)."
)


@dataclass(frozen=True)
class StatusRequest:
    """Everything `run` needs, resolved by the command (flag > env > profile > default)."""

    api_host: str
    token: str = field(repr=False)
    since: timedelta = timedelta(hours=24)
    granularity: str = "auto"
    source: str | None = None
    write_key: str | None = field(default=None, repr=False)
    org_id: str | None = None
    webhook_url: str | None = None
    max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE
    timeout: float = 15.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class DestinationState:
    destination: Destination
    problems: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        d = self.destination
        return {
            "id": d.id,
            "name": d.name,
            "kind": d.kind,
            "enabled": d.enabled,
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class Delivery:
    destination_id: str
    steps: dict[str, Step]
    failures: dict[str, int]
    retried: int

    @property
    def failure_rate(self) -> float:
        failed = self.steps["failed-delivery"].total
        tried = failed + self.steps["successful-delivery"].total
        return failed / tried if tried else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "destinationId": self.destination_id,
            "steps": {name: step.total for name, step in self.steps.items()},
            "failures": dict(self.failures),
            "retried": self.retried,
            "failureRate": round(self.failure_rate, 4),
        }


@dataclass(frozen=True)
class FilterState:
    filter: Filter
    drops_identify: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.filter.id,
            "title": self.filter.title,
            "destinationId": self.filter.destination_id,
            "enabled": self.filter.enabled,
            "if": self.filter.condition,
            "dropsIdentify": self.drops_identify,
        }


@dataclass(frozen=True)
class StatusResult:
    source: dict[str, Any]
    window: Window
    events: tuple[EventVolume, ...]
    missing: tuple[str, ...]
    unknown: tuple[str, ...]
    destinations: tuple[DestinationState, ...]
    delivery: Delivery | None
    filters: tuple[FilterState, ...]
    checks: tuple[Check, ...]
    # Requests made to the event volume endpoint (a watch paces itself by it).
    volume_requests: int = 1

    @property
    def total(self) -> int:
        return sum(event.total for event in self.events)

    @property
    def healthy(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def series(self) -> list[tuple[str, int]]:
        """The whole volume per bucket, oldest first: the buckets Segment answered with,
        or the window's own when it answered none."""
        counts: dict[str, int] = {}
        for event in self.events:
            for point in event.series:
                counts[point.time] = counts.get(point.time, 0) + point.count
        # ISO-8601 times in one format sort as time does.
        times = sorted(counts) or [iso(moment) for moment in self.window.buckets()]
        return [(time, counts.get(time, 0)) for time in times]

    def as_json(self) -> dict[str, Any]:
        return {
            "source": dict(self.source),
            "window": self.window.as_json(),
            "volume": {
                "total": self.total,
                "events": [
                    {
                        "eventName": event.event_name,
                        "eventType": event.event_type,
                        "total": event.total,
                        "lastSeen": event.last_seen,
                        "series": [{"time": p.time, "count": p.count} for p in event.series],
                    }
                    for event in self.events
                ],
                "missing": list(self.missing),
                "unknown": list(self.unknown),
            },
            "destinations": [state.as_json() for state in self.destinations],
            "delivery": self.delivery.as_json() if self.delivery else None,
            "filters": [state.as_json() for state in self.filters],
            "checks": [check.as_json() for check in self.checks],
            "healthy": self.healthy,
        }

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.healthy else ExitCode.FAILURE

    @property
    def problem(self) -> str | None:
        failed = [check for check in self.checks if check.status == "fail"]
        if not failed:
            return None
        return "not healthy: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)

    def watch_interval(self, wanted: float) -> float:
        """`wanted` seconds, or longer when a refresh would spend more than the share of
        the event volume endpoint's per-minute budget that a watch may use."""
        floor = 60.0 * self.volume_requests / (VOLUME_REQUESTS_PER_MINUTE * WATCH_SHARE)
        return max(wanted, floor)


def open_api(request: StatusRequest, on_wait: Callable[[str], None] | None) -> PublicApi:
    return PublicApi(
        request.api_host,
        request.token,
        on_wait=on_wait,
        timeout=request.timeout,
        deadline=request.timeout * DEADLINE_FACTOR,
        page_size=1000,
    )


def _refused_for_plan(exc: RemoteRefused) -> RemoteRefused:
    if exc.status == 403:
        return RemoteRefused(exc.message, status=403, hint=PLAN_HINT)
    return exc


def find(api: PublicApi, ref: str | None, write_key: str | None) -> dict[str, Any]:
    """The source named by `ref` (id, slug or name), else the one holding the write key."""
    found = readings.sources(api)
    if ref:
        return _summary(find_source(found, ref))
    source = readings.source_for_write_key(found, write_key) if write_key else None
    if source is None:
        why = "no source of the token's workspace holds the profile's write key"
        raise ConfigError(
            (why if write_key else "no source is set")
            + ": give --source (its id, slug or name), set $CMDAI_SOURCE, or store "
            "source in the profile"
        )
    return _summary(source)


def _summary(source: dict[str, Any]) -> dict[str, Any]:
    return {"id": source.get("id"), "slug": source.get("slug"), "name": source.get("name")}


def run(
    request: StatusRequest,
    *,
    now: datetime | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> StatusResult:
    """Ask the Public API how the source's data flows, and judge it."""
    now = now or datetime.now(timezone.utc)
    # Before any request: a window Segment cannot cover is the user's to fix.
    window = window_for(request.since, request.granularity, now)
    redact.register(request.token)
    with open_api(request, on_wait) as api:
        try:
            return _run(api, request, window)
        except RemoteRefused as exc:
            raise _refused_for_plan(exc) from None


def _run(api: PublicApi, request: StatusRequest, window: Window) -> StatusResult:
    source = find(api, request.source, request.write_key)
    source_id = str(source["id"])
    volume, volume_requests = readings.event_volume(api, source_id, window)
    events = tuple(sorted(volume, key=lambda e: (-e.total, e.name)))
    missing, unknown = catalogue_gaps(events)
    # Only the two destinations of the integration; others are not this command's business.
    found = [
        d
        for d in readings.connected_destinations(api, source_id)
        if d.kind in ("commandai", "webhook")
    ]
    states = tuple(_judge_destination(api, d, request) for d in found)
    webhook = next((d for d in found if d.kind == "webhook"), None)
    delivery: Delivery | None = None
    unmeasured = "no Webhooks destination: nothing to measure"
    if webhook is not None:
        try:
            delivery = _delivery(api, source_id, webhook.id, window)
        except RemoteRefused as exc:
            # Delivery Overview is a beta a workspace may lack: the rest still stands.
            if exc.status not in (403, 404):
                raise
            unmeasured = f"Delivery Overview did not answer: {exc.message}"
    rules = tuple(
        FilterState(rule, rule.enabled and readings.drops(api, rule, identify_payload()))
        for d in found
        for rule in readings.filters(api, d.id)
    )
    checks = (
        _events_check(events, window),
        *_destination_checks(states, request),
        _delivery_check(delivery, request.max_failure_rate, unmeasured),
        _filters_check(rules),
    )
    return StatusResult(
        source,
        window,
        events,
        missing,
        unknown,
        states,
        delivery,
        rules,
        checks,
        volume_requests,
    )


def catalogue_gaps(events: tuple[EventVolume, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Catalogue events (those on Segment's catalog page) that did not arrive, and names
    that are not Command AI's at all (a typo, or a custom event)."""
    arrived = {event.event_name for event in events if event.total > 0}
    types = {event.event_type for event in events if event.total > 0}
    known = {catalogue.TEST_EVENT}
    missing = []
    for spec in catalogue.events():
        if not spec.in_segment_catalog:
            continue
        if spec.segment_type == "identify":
            if "identify" not in types:
                missing.append(spec.name)
        elif not any(name and catalogue.lookup(name) is spec for name in arrived):
            missing.append(spec.name)
    unknown = sorted(
        name for name in arrived if name and name not in known and catalogue.lookup(name) is None
    )
    return tuple(missing), tuple(unknown)


def identify_payload() -> dict[str, Any]:
    """An identify like the one Command AI sends when the bar boots (the catalogue's)."""
    spec = catalogue.spec_for("CommandBar booted")
    return catalogue.build_message(spec, user_id="cmdai-status-user")


def _judge_destination(
    api: PublicApi, dest: Destination, request: StatusRequest
) -> DestinationState:
    problems = []
    if not dest.enabled:
        problems.append("disabled")
    if dest.kind == "commandai" and request.org_id:
        org = dest.settings.get("orgId")
        if org != request.org_id:
            problems.append(f"orgId is {org!r}, the profile's is {request.org_id!r}")
    if dest.kind == "webhook" and request.webhook_url:
        urls = readings.webhook_urls(api, dest.id)
        if request.webhook_url not in urls:
            shown = ", ".join(redact.scrub(u) for u in urls) or "none"
            problems.append(f"posts to {shown}, not the profile's webhook URL")
    return DestinationState(dest, tuple(problems))


def _delivery(api: PublicApi, source_id: str, destination_id: str, window: Window) -> Delivery:
    groups = {"failed-delivery": "discardReason", "successful-delivery": "discardReason"}
    steps = {
        step: readings.delivery_step(
            api, step, source_id, destination_id, window, group_by=groups.get(step)
        )
        for step in readings.STEPS
    }
    failures: dict[str, int] = {}
    for row in steps["failed-delivery"].rows:
        reason = row.discard_reason or "unknown"
        failures[reason] = failures.get(reason, 0) + row.total
    return Delivery(destination_id, steps, failures, readings.retried(steps["successful-delivery"]))


def _events_check(events: tuple[EventVolume, ...], window: Window) -> Check:
    total = sum(event.total for event in events)
    if total == 0:
        return Check("events", "fail", "no event reached the source in the window")
    names = len([e for e in events if e.total])
    return Check("events", "pass", f"{total} events of {names} names in the window")


def _destination_checks(
    states: tuple[DestinationState, ...], request: StatusRequest
) -> list[Check]:
    checks = []
    for kind, name in (("commandai", "command ai destination"), ("webhook", "webhook destination")):
        mine = [s for s in states if s.destination.kind == kind]
        if not mine:
            if kind == "webhook" and not request.webhook_url:
                checks.append(Check(name, "skip", "none on the source, and no webhook_url set"))
            else:
                checks.append(Check(name, "fail", "missing: none on the source"))
            continue
        bad = [s for s in mine if s.problems]
        if bad:
            detail = "; ".join(f"{s.destination.name}: {', '.join(s.problems)}" for s in bad)
            checks.append(Check(name, "fail", detail))
        else:
            checks.append(
                Check(name, "pass", ", ".join(s.destination.name for s in mine) + " enabled")
            )
    return checks


def _delivery_check(delivery: Delivery | None, allowed: float, unmeasured: str) -> Check:
    if delivery is None:
        return Check("delivery", "skip", unmeasured)
    rate = delivery.failure_rate
    failed = delivery.steps["failed-delivery"].total
    detail = f"{failed} failed ({rate:.1%}, allowed {allowed:.1%})"
    return Check("delivery", "fail" if rate > allowed else "pass", detail)


def _filters_check(rules: tuple[FilterState, ...]) -> Check:
    dropping = [state for state in rules if state.drops_identify]
    if dropping:
        titles = ", ".join(repr(state.filter.title or state.filter.id) for state in dropping)
        return Check("filters", "fail", f"dropping an identify: {titles}")
    if not rules:
        return Check("filters", "pass", "no destination filters")
    return Check("filters", "pass", f"{len(rules)} filters; none drops an identify")


def events_last_hour(
    api_host: str,
    token: str,
    *,
    source: str | None,
    write_key: str | None,
    timeout: float,
) -> tuple[dict[str, Any], int]:
    """The source and how many events reached it in the last hour (doctor's check).

    One try per request: a pipeline wants the answer now, and the next run retries.
    """
    now = datetime.now(timezone.utc)
    window = window_for(timedelta(hours=1), "minute", now)
    policy = RetryPolicy(max_retries=0, max_total_wait=0.0)
    with PublicApi(api_host, token, policy=policy, timeout=timeout, page_size=1000) as api:
        try:
            found = find(api, source, write_key)
            events, _ = readings.event_volume(api, str(found["id"]), window)
        except RemoteRefused as exc:
            raise _refused_for_plan(exc) from None
    return found, sum(event.total for event in events)
