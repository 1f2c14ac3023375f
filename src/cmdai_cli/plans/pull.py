"""`plan pull`: a Segment Protocols tracking plan's rules, read into a local plan.

The token and host resolve as for every Public API command: --token, then
$CMDAI_PUBLIC_API_TOKEN, then the profile; --api-host, then the profile, then the
region's host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmdai_cli.errors import ConfigError, RemoteRefused
from cmdai_cli.plans.rules import Plan, parse_plan, save_plan
from cmdai_cli.profile import Resolved
from cmdai_cli.public_api import open_client
from cmdai_cli.results import Done

NOT_FOUND_HINT = (
    "check the tracking plan's id (in Segment: Protocols > Tracking Plans, the id is in "
    "the plan's URL) and that the token's workspace holds it"
)


@dataclass(frozen=True)
class PullRequest:
    """The tracking plan to read, with the run's settings (Public API token and host)."""

    settings: Resolved
    plan_id: str
    out: Path | None = None
    timeout: float = 15.0


@dataclass(frozen=True)
class PullResult(Done):
    """The plan read, and where it went (`out`; None: stdout)."""

    plan: Plan
    out: Path | None

    @property
    def by_type(self) -> dict[str, int]:
        """The number of rules of each type, in the order they first appear."""
        counts: dict[str, int] = {}
        for rule in self.plan.rules:
            counts[rule.type] = counts.get(rule.type, 0) + 1
        return counts

    def as_json(self) -> dict[str, Any]:
        """Without `out`, the plan file itself; with it, what was written where."""
        if self.out is None:
            return self.plan.as_file()
        return {
            "name": self.plan.name,
            "trackingPlanId": self.plan.meta.get("trackingPlanId"),
            "rules": len(self.plan.rules),
            "by_type": self.by_type,
            "out": str(self.out),
        }


def pull(request: PullRequest, *, on_wait: Callable[[str], None] | None = None) -> PullResult:
    """Read the plan's rules (every page) and, with `out`, write them as a plan file."""
    plan_id = request.plan_id
    if not plan_id.strip():
        raise ConfigError("--tracking-plan is empty: give the tracking plan's id")
    values = request.settings.values
    with open_client(values, on_wait, timeout=request.timeout) as client:
        try:
            about = client.get_tracking_plan(plan_id)
        except RemoteRefused as exc:
            if exc.status != 404:
                raise
            raise RemoteRefused(exc.message, status=404, hint=NOT_FOUND_HINT) from None
        rules = list(client.iter_tracking_plan_rules(plan_id))
    name = about.get("name") if isinstance(about.get("name"), str) else plan_id
    source = f"tracking plan {plan_id}"
    data = {
        "name": name,
        "source": "segment",
        "trackingPlanId": plan_id,
        "trackingPlanType": about.get("type"),
        "apiHost": values["api_host"],
        "rules": rules,
    }
    try:
        plan = parse_plan(data, source=source)
    except ConfigError as exc:
        # What Segment sent is not a usable plan: that is Segment's answer, not our config.
        raise RemoteRefused(f"Segment Public API: {exc.message}") from None
    if request.out is not None:
        save_plan(plan, request.out)
    return PullResult(plan, request.out)
