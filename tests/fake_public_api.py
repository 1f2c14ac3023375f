"""A fake of the part of Segment's Public API that `cmdai destination` and `cmdai plan pull`
use, on loopback.

It keeps sources, destinations and subscriptions in memory and behaves as the real API is
documented to: Bearer auth, `{"data": ...}` and `{"errors": [...]}` bodies, cursor
pagination with `pagination.count` required, the Alpha media type on subscription
endpoints, the `input` wrapper on subscription updates, masked secret settings, one
Command AI (device-mode) destination per source, tracking plans and their rules (read
only). Failures can be injected per request.

For `cmdai status` it also answers the observability endpoints (shapes from
segmentio/public-api-sdk-python: docs/EventsApi.md, docs/DeliveryOverviewApi.md,
docs/DestinationFiltersApi.md): `GET /events/volume` (series laid on the buckets of the
asked window, paged under `data.result`), the six Delivery Overview steps (only with the
Beta media type, with their window limits), destination filters and their preview.
Every request's headers are kept, `Host` included, so a test can route a client's EU
host (https://eu1.api.segmentapis.com) here and see where it meant to go.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ALPHA = "application/vnd.segment.v1alpha+json"
BETA = "application/vnd.segment.v1beta+json"
STABLE = ("application/vnd.segment.v1+json", "application/json", "*/*")
COMMANDAI = "638f843c4520d424f63c9e51"
WEBHOOKS = "614a3c7d791c91c41bae7599"
ACTIONS = {
    COMMANDAI: {"pvLKevrkEtiUZX3ej5FX8j": "identifyUser", "5cVhYfBJYs4sCSvLLoahGc": "trackEvent"},
    WEBHOOKS: {"nFPnRozhz1mh4Gbx4MLvT5": "send"},
}
SECRET_SETTINGS = {"sharedSecret"}
DEVICE_MODE = {COMMANDAI}
MASK = "••••••••"


@dataclass
class Injected:
    method: str
    path: re.Pattern[str]
    status: int  # 0: close the connection without an answer
    times: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Refused(Exception):
    def __init__(self, answer: tuple[int, Any, dict[str, str]]) -> None:
        super().__init__(answer[0])
        self.answer = answer


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class FakePublicApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.sources: list[dict[str, Any]] = []
        self.destinations: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.tracking_plans: dict[str, dict[str, Any]] = {}
        # source id -> (eventName, eventType) -> counts, the last one in the newest bucket
        self.volume: dict[str, dict[tuple[str | None, str], list[int]]] = {}
        # (source id, destination id or None, step) -> dataset rows (discardReason, total)
        self.delivery: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {}
        self.filters: dict[str, list[dict[str, Any]]] = {}
        # What each volume answer held, for tests that compare sums with it.
        self.answered: list[dict[str, Any]] = []
        # The most items a page holds whatever count is asked (to exercise pagination).
        self.max_page: int | None = None
        self.requests: list[Seen] = []
        self.injected: list[Injected] = []
        self.lock = threading.Lock()
        self._ids = 0
        self.url = ""

    # ------------------------------------------------------------ set-up helpers

    def new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:04d}"

    def add_source(
        self, slug: str, name: str | None = None, write_keys: list[str] | None = None
    ) -> dict[str, Any]:
        source = {
            "id": self.new_id("src"),
            "slug": slug,
            "name": name or slug,
            "enabled": True,
            "writeKeys": write_keys or ["wk"],
            "metadata": {"slug": "javascript", "name": "Javascript"},
        }
        self.sources.append(source)
        return source

    def add_tracking_plan(self, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        plan: dict[str, Any] = {
            "id": self.new_id("tp_"),
            "name": name,
            "slug": name.lower().replace(" ", "-"),
            "type": "LIVE",
            "rules": list(rules),
        }
        self.tracking_plans[plan["id"]] = plan
        return plan

    def add_destination(
        self, source_id: str, metadata_id: str, *, enabled: bool = True, **settings: Any
    ) -> dict[str, Any]:
        dest: dict[str, Any] = {
            "id": self.new_id("dst"),
            "sourceId": source_id,
            "metadataId": metadata_id,
            "name": "Command AI" if metadata_id == COMMANDAI else "Command AI webhook",
            "enabled": enabled,
            "settings": dict(settings),
        }
        self.destinations[dest["id"]] = dest
        return dest

    def add_webhook_subscription(self, dest: dict[str, Any], url: str) -> None:
        sub = {
            "id": self.new_id("sub"),
            "destinationId": dest["id"],
            "name": "Send identify to Command AI",
            "actionId": "nFPnRozhz1mh4Gbx4MLvT5",
            "actionSlug": "send",
            "trigger": 'type = "identify"',
            "enabled": True,
            "settings": {"url": url, "method": "POST"},
        }
        self.subscriptions[sub["id"]] = sub

    def add_filter(self, dest: dict[str, Any], title: str, condition: str, **extra: Any) -> None:
        self.filters.setdefault(dest["id"], []).append(
            {
                "id": self.new_id("flt"),
                "sourceId": dest["sourceId"],
                "destinationId": dest["id"],
                "title": title,
                "if": condition,
                "actions": extra.pop("actions", [{"type": "DROP"}]),
                "enabled": extra.pop("enabled", True),
                **extra,
            }
        )

    def seed_status(
        self,
        *,
        write_key: str = "wk",
        org_id: str = "org-1",
        webhook_url: str = "https://api.command.ai/hooks/o1",
        names: int = 10,
        buckets: int = 24,
    ) -> dict[str, Any]:
        """A healthy workspace for `cmdai status`: a source whose events arrive, both
        destinations enabled, deliveries that succeed. Returns the source."""
        from cmdai_cli.event_names import ALL

        source = self.add_source("command-ai", "Command AI", write_keys=[write_key])
        volume = self.volume.setdefault(source["id"], {})
        # A working day's shape, newest bucket last, so that charts have something to show.
        day = [1, 1, 1, 1, 2, 3, 5, 8, 10, 12, 12, 11, 10, 11, 12, 12, 10, 8, 6, 4, 3, 2, 1, 1]
        volume[(None, "identify")] = [day[i % 24] for i in range(buckets)]
        extra = [f"Custom Event {n}" for n in range(max(0, names - len(ALL) + 1))]
        for n, name in enumerate([name for name, _ in ALL[1:]] + extra):
            if len(volume) >= names:
                break
            # Shortcuts are rarely changed: none in the window.
            weight = 0 if name == "User Changed Shortcut" else 4 - n % 4
            volume[(name, "track")] = [
                day[i % 24] * weight + (i * n) % 3 * bool(weight) for i in range(buckets)
            ]
        self.add_destination(source["id"], COMMANDAI, orgId=org_id)
        hook = self.add_destination(source["id"], WEBHOOKS, sharedSecret="s")
        self.add_webhook_subscription(hook, webhook_url)
        received = sum(sum(counts) for counts in volume.values())
        identify = sum(volume[(None, "identify")])
        steps: dict[str, list[dict[str, Any]]] = {
            "successfully-received": [{"total": received}],
            "failed-on-ingest": [],
            "filtered-at-source": [],
            "filtered-at-destination": [{"total": received - identify}],
            "failed-delivery": [{"discardReason": "http.504", "total": 1}],
            "successful-delivery": [
                {"discardReason": "successes.attempt.1", "total": identify - 3},
                {"discardReason": "successes.attempt.2", "total": 2},
            ],
        }
        for step, rows in steps.items():
            destination = (
                None
                if step in ("successfully-received", "failed-on-ingest", "filtered-at-source")
                else hook["id"]
            )
            self.delivery[(source["id"], destination, step)] = rows
        return source

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` requests matching method and path regex get this answer."""
        self.injected.append(
            Injected(method, re.compile(path), status, times, body, dict(headers or {}))
        )

    def writes(self) -> list[Seen]:
        return [r for r in self.requests if r.method != "GET"]

    def on_source(self, source_id: str, metadata_id: str | None = None) -> list[dict[str, Any]]:
        return [
            d
            for d in self.destinations.values()
            if d["sourceId"] == source_id
            and (metadata_id is None or d["metadataId"] == metadata_id)
        ]

    def subs_of(self, destination_id: str) -> list[dict[str, Any]]:
        return [s for s in self.subscriptions.values() if s["destinationId"] == destination_id]

    # ------------------------------------------------------------ views

    def destination_view(self, dest: dict[str, Any]) -> dict[str, Any]:
        settings = {
            k: (MASK if k in SECRET_SETTINGS and v else v) for k, v in dest["settings"].items()
        }
        return {
            "id": dest["id"],
            "name": dest["name"],
            "enabled": dest["enabled"],
            "sourceId": dest["sourceId"],
            "settings": settings,
            "metadata": {"id": dest["metadataId"], "name": "x", "slug": "x"},
        }

    # ------------------------------------------------------------ request handling

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        raw: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return 400, _errors("bad-request", "invalid JSON"), {}
        with self.lock:
            self.requests.append(Seen(method, path, query, headers, body))
            for item in self.injected:
                if item.times > 0 and item.method == method and item.path.fullmatch(path):
                    item.times -= 1
                    return item.status, item.body, item.headers
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, _errors("unauthorized", "The access token is missing or invalid"), {}
            alpha = "/subscriptions" in path
            beta = path.startswith("/delivery-overview/")
            accept = headers.get("accept", "")
            if alpha and accept != ALPHA:
                return 406, _errors("not-acceptable", f"this endpoint needs Accept {ALPHA}"), {}
            if beta and accept != BETA:
                return 406, _errors("not-acceptable", f"this endpoint needs Accept {BETA}"), {}
            if not alpha and not beta and accept not in STABLE:
                return 406, _errors("not-acceptable", f"unknown media type {accept}"), {}
            if body is not None:
                wanted = ALPHA if alpha else None
                ctype = headers.get("content-type", "")
                if (wanted and ctype != wanted) or (not wanted and ctype not in STABLE):
                    return 415, _errors("unsupported-media-type", f"bad Content-Type {ctype}"), {}
            return self.route(method, path, query, body)

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["sources"]:
            return self.page(query, "sources", self.sources)
        if method == "GET" and len(parts) == 3 and parts[0] == "sources":
            if parts[2] != "connected-destinations":
                return _not_found()
            if not any(s["id"] == parts[1] for s in self.sources):
                return _not_found("source")
            items = [self.destination_view(d) for d in self.on_source(parts[1])]
            return self.page(query, "destinations", items)
        if parts[:1] == ["destinations"]:
            if method == "POST" and len(parts) == 1:
                return self.create_destination(body)
            dest = self.destinations.get(parts[1]) if len(parts) > 1 else None
            if dest is None:
                return _not_found("destination")
            if method == "PATCH" and len(parts) == 2:
                return self.update_destination(dest, body)
            if len(parts) >= 3 and parts[2] == "subscriptions":
                if method == "GET" and len(parts) == 3:
                    return self.page(query, "subscriptions", self.subs_of(dest["id"]))
                if method == "POST" and len(parts) == 3:
                    return self.create_subscription(dest, body)
                if method == "PATCH" and len(parts) == 4:
                    sub = self.subscriptions.get(parts[3])
                    if sub is None or sub["destinationId"] != dest["id"]:
                        return _not_found("subscription")
                    return self.update_subscription(sub, body)
        if method == "GET" and parts[:1] == ["tracking-plans"]:
            return self.tracking_plan_route(parts[1:], query)
        if method == "GET" and parts == ["events", "volume"]:
            return self.events_volume(query)
        if method == "GET" and parts[:1] == ["delivery-overview"] and len(parts) == 2:
            return self.delivery_overview(parts[1], query)
        if parts[:1] == ["destination"]:
            if method == "POST" and parts[1:] == ["filters", "preview"]:
                return self.preview_filter(body)
            if method == "GET" and len(parts) == 3 and parts[2] == "filters":
                if parts[1] not in self.destinations:
                    return _not_found("destination")
                return self.page(query, "filters", self.filters.get(parts[1], []))
        return _not_found()

    # ------------------------------------------------------------ observability

    def window(self, query: dict[str, list[str]]) -> tuple[list[datetime], str]:
        """The asked window's bucket starts and granularity; Refused(422) for a bad one."""
        granularity = query.get("granularity", [""])[0]
        steps = {"MINUTE": 60, "HOUR": 3600, "DAY": 86400}
        if granularity not in steps:
            raise _invalid("must be DAY, HOUR or MINUTE", "granularity")
        try:
            start = _parse_time(query["startTime"][0])
            end = _parse_time(query["endTime"][0])
        except (KeyError, ValueError):
            raise _invalid("startTime and endTime are required", "startTime") from None
        if end <= start:
            raise _invalid("endTime must be after startTime", "endTime")
        times = []
        moment = start
        while moment < end:
            times.append(moment)
            moment += timedelta(seconds=steps[granularity])
        return times, granularity

    def events_volume(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        try:
            times, _ = self.window(query)
        except Refused as exc:
            return exc.answer
        sources = query.get("sourceId", [])
        group_by = set(query.get("groupBy", []))
        items = []
        for source in self.sources:
            if sources and source["id"] not in sources:
                continue
            for (name, kind), counts in self.volume.get(source["id"], {}).items():
                laid = [0] * max(0, len(times) - len(counts)) + counts[-len(times) :]
                series = [{"time": _iso(t), "count": c} for t, c in zip(times, laid, strict=True)]
                items.append(
                    {
                        "source": {k: source[k] for k in ("id", "name", "slug")},
                        "eventName": name if "eventName" in group_by else None,
                        "eventType": kind if "eventType" in group_by else None,
                        "total": sum(laid),
                        "series": series,
                    }
                )
        status, answer, extra = self.page(query, "result", items)
        if status == 200:
            answer["data"]["query"] = {k: v for k, v in query.items() if "pagination" not in k}
            answer["data"]["path"] = "/events/volume"
            self.answered.append(answer["data"])
        return status, answer, extra

    def delivery_overview(
        self, step: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        steps = (
            "successfully-received",
            "failed-on-ingest",
            "filtered-at-source",
            "filtered-at-destination",
            "failed-delivery",
            "successful-delivery",
        )
        if step not in steps:
            return _not_found()
        source = query.get("sourceId", [None])[0]
        destination = query.get("destinationConfigId", [None])[0]
        if not source:
            return 422, _errors("validation", "sourceId is required", "sourceId"), {}
        if step in steps[3:] and not destination:
            return 422, _errors("validation", "required", "destinationConfigId"), {}
        try:
            times, granularity = self.window(query)
        except Refused as exc:
            return exc.answer
        # Delivery Overview's limits: minute 4 h / 48 h, hour 14 d / 30 d, day 30 d / 30 d.
        span, oldest = {"MINUTE": (4, 48), "HOUR": (14 * 24, 30 * 24), "DAY": (720, 720)}[
            granularity
        ]
        now = datetime.now(timezone.utc)
        if len(times) * {"MINUTE": 1 / 60, "HOUR": 1, "DAY": 24}[granularity] > span or (
            now - times[0] > timedelta(hours=oldest)
        ):
            return 422, _errors("validation", "time range too large for granularity"), {}
        key = (source, destination if step in steps[3:] else None, step)
        rows = self.delivery.get(key, [])
        if "discardReason" not in query.get("groupBy", []):
            total = sum(int(r["total"]) for r in rows)
            rows = [{"total": total, "totalRetryCount": 0}] if rows else []
        dataset = [
            {
                "eventName": None,
                "eventType": None,
                "discardReason": r.get("discardReason"),
                "total": r["total"],
                "totalRetryCount": r.get("totalRetryCount", 0),
                "series": [{"time": _iso(times[-1]), "count": r["total"], "retryCount": 0}],
            }
            for r in rows
        ]
        status, answer, extra = self.page(query, "dataset", dataset)
        if status == 200:
            answer["data"]["total"] = sum(int(r["total"]) for r in rows)
        return status, answer, extra

    def preview_filter(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("filter"), dict):
            return 422, _errors("validation", "filter is required", "filter"), {}
        payload = body.get("payload")
        if not isinstance(payload, dict):
            return 422, _errors("validation", "payload is required", "payload"), {}
        rule = body["filter"]
        dropped = _matches(str(rule.get("if", "")), payload) and any(
            a.get("type") == "DROP" for a in rule.get("actions", []) if isinstance(a, dict)
        )
        result = None if dropped else payload
        return 200, {"data": {"inputPayload": payload, "result": result}}, {}

    def tracking_plan_route(
        self, parts: list[str], query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        views = {
            pid: {k: v for k, v in plan.items() if k != "rules"}
            for pid, plan in self.tracking_plans.items()
        }
        if not parts:
            return self.page(query, "trackingPlans", list(views.values()))
        plan = self.tracking_plans.get(parts[0])
        if plan is None:
            return _not_found("tracking plan")
        if len(parts) == 1:
            return 200, {"data": {"trackingPlan": views[parts[0]]}}, {}
        if parts[1:] == ["rules"]:
            return self.page(query, "rules", plan["rules"])
        return _not_found()

    def page(
        self, query: dict[str, list[str]], key: str, items: list[dict[str, Any]]
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            count = int(query["pagination.count"][0])
        except (KeyError, ValueError):
            return (
                422,
                _errors("validation", "pagination.count is required", "pagination.count"),
                {},
            )
        if not 1 <= count <= 1000:
            return 422, _errors("validation", "must be 1 to 1000", "pagination.count"), {}
        if self.max_page is not None:
            count = min(count, self.max_page)
        start = int(query.get("pagination.cursor", ["0"])[0])
        chunk = items[start : start + count]
        following = str(start + count) if start + count < len(items) else None
        pagination = {"current": str(start), "next": following, "totalEntries": len(items)}
        return 200, {"data": {key: chunk, "pagination": pagination}}, {}

    def create_destination(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict):
            return 400, _errors("bad-request", "body must be an object"), {}
        problems = []
        source_id = body.get("sourceId")
        metadata_id = body.get("metadataId")
        settings = body.get("settings")
        if not any(s["id"] == source_id for s in self.sources):
            return _not_found("source")
        if metadata_id not in ACTIONS:
            problems.append(("metadataId", "unknown destination metadata"))
        if not isinstance(settings, dict):
            problems.append(("settings", "must be an object"))
        elif metadata_id == COMMANDAI:
            if not isinstance(settings.get("orgId"), str) or not settings.get("orgId"):
                problems.append(("settings.orgId", "Organization ID is required"))
            if "deploy" in settings and not isinstance(settings["deploy"], bool):
                problems.append(("settings.deploy", "must be a boolean"))
        if problems:
            return 422, {"errors": [_error("validation", m, f) for f, m in problems]}, {}
        if metadata_id in DEVICE_MODE and self.on_source(str(source_id), str(metadata_id)):
            return 409, _errors("conflict", "the source already has this destination"), {}
        dest: dict[str, Any] = {
            "id": self.new_id("dst"),
            "sourceId": source_id,
            "metadataId": metadata_id,
            "name": body.get("name") or "Destination",
            "enabled": bool(body.get("enabled", False)),
            "settings": dict(settings or {}),
        }
        self.destinations[dest["id"]] = dest
        return 200, {"data": {"destination": self.destination_view(dest)}}, {}

    def update_destination(
        self, dest: dict[str, Any], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or set(body) - {"name", "enabled", "settings"}:
            return 422, _errors("validation", "unknown fields", "body"), {}
        if "settings" in body:
            if not isinstance(body["settings"], dict):
                return 422, _errors("validation", "must be an object", "settings"), {}
            orgid = body["settings"].get("orgId", "x")
            if dest["metadataId"] == COMMANDAI and not orgid:
                return (
                    422,
                    _errors("validation", "Organization ID is required", "settings.orgId"),
                    {},
                )
            dest["settings"].update(body["settings"])
        if "enabled" in body:
            dest["enabled"] = bool(body["enabled"])
        if "name" in body:
            dest["name"] = body["name"]
        return 200, {"data": {"destination": self.destination_view(dest)}}, {}

    def _check_subscription(
        self, dest: dict[str, Any], body: dict[str, Any]
    ) -> list[tuple[str, str]]:
        problems = []
        if "actionId" in body and body["actionId"] not in ACTIONS[dest["metadataId"]]:
            problems.append(("actionId", "not an action of this destination"))
        if "trigger" in body and (not isinstance(body["trigger"], str) or not body["trigger"]):
            problems.append(("trigger", "must be a non-empty FQL string"))
        if "settings" in body and not isinstance(body["settings"], dict):
            problems.append(("settings", "must be an object"))
        return problems

    def create_subscription(
        self, dest: dict[str, Any], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict):
            return 400, _errors("bad-request", "body must be an object"), {}
        problems = [(f, "is required") for f in ("name", "actionId", "trigger") if f not in body]
        problems += self._check_subscription(dest, body)
        if problems:
            return 422, {"errors": [_error("validation", m, f) for f, m in problems]}, {}
        sub = {
            "id": self.new_id("sub"),
            "destinationId": dest["id"],
            "name": body["name"],
            "actionId": body["actionId"],
            "actionSlug": ACTIONS[dest["metadataId"]][body["actionId"]],
            "trigger": body["trigger"],
            "enabled": bool(body.get("enabled", False)),
            "settings": body.get("settings") or {},
        }
        self.subscriptions[sub["id"]] = sub
        return 200, {"data": {"destinationSubscription": sub}}, {}

    def update_subscription(
        self, sub: dict[str, Any], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return 422, _errors("validation", 'the body must be {"input": {...}}', "input"), {}
        change = body["input"]
        unknown = set(change) - {"name", "trigger", "enabled", "settings"}
        if unknown:
            return 422, _errors("validation", f"unknown fields {sorted(unknown)}", "input"), {}
        dest = self.destinations[sub["destinationId"]]
        problems = self._check_subscription(dest, change)
        if problems:
            return 422, {"errors": [_error("validation", m, f) for f, m in problems]}, {}
        sub.update(change)
        return 200, {"data": {"destinationSubscription": sub}}, {}


def _invalid(message: str, field_name: str) -> Refused:
    return Refused((422, _errors("validation", message, field_name), {}))


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_CLAUSE = re.compile(r'^\s*(type|event)\s*(=|!=)\s*"([^"]*)"\s*$')


def _matches(condition: str, payload: dict[str, Any]) -> bool:
    """A small part of FQL: clauses `type|event (=|!=) "value"` joined by `and`; `all`."""
    if condition.strip() == "all":
        return True
    for clause in re.split(r"\s+and\s+", condition, flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if match is None:
            return False
        field_name, op, value = match.groups()
        if (payload.get(field_name) == value) != (op == "="):
            return False
    return True


def _error(kind: str, message: str, field_name: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if field_name:
        error["field"] = field_name
    return error


def _errors(kind: str, message: str, field_name: str | None = None) -> dict[str, Any]:
    return {"errors": [_error(kind, message, field_name)]}


def _not_found(what: str = "resource") -> tuple[int, Any, dict[str, str]]:
    return 404, _errors("not-found", f"{what} not found"), {}


def _handler(api: FakePublicApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every answer back about 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body, extra = api.handle(
                self.command, parts.path, parse_qs(parts.query), headers, raw
            )
            if status == 0:
                # A dropped connection: no status line at all.
                self.close_connection = True
                return
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

    return Handler


@contextmanager
def running(token: str) -> Iterator[FakePublicApi]:
    api = FakePublicApi(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
