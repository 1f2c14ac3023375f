"""`plan pull`: a Segment Protocols tracking plan's rules, read into a local plan.

The token and host resolve as for every Public API command: --token, then
$CMDAI_PUBLIC_API_TOKEN, then the profile; --api-host, then the profile, then the
region's host.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cmdai_cli.errors import ConfigError, RemoteRefused
from cmdai_cli.plans.rules import Plan, parse_plan, save_plan

NOT_FOUND_HINT = (
    "check the tracking plan's id (in Segment: Protocols > Tracking Plans, the id is in "
    "the plan's URL) and that the token's workspace holds it"
)


def pull(
    profile_flag: str | None,
    plan_id: str,
    *,
    out: Path | None = None,
    token: str | None = None,
    api_host: str | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Read the plan's rules (every page) and, with `out`, write them as a plan file."""
    from cmdai_cli import profile
    from cmdai_cli.public_api import connection_flags, open_client

    if not plan_id.strip():
        raise ConfigError("--tracking-plan is empty: give the tracking plan's id")
    values = profile.resolve(profile_flag, connection_flags(token, api_host)).values
    with open_client(values, on_wait) as client:
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
    if out is not None:
        save_plan(plan, out)
    return summary_of(plan, out)


def summary_of(plan: Plan, out: Path | None) -> dict[str, Any]:
    """What `plan pull` reports: the plan, the number of rules by type, where it went."""
    by_type: dict[str, int] = {}
    for rule in plan.rules:
        by_type[rule.type] = by_type.get(rule.type, 0) + 1
    return {
        "name": plan.name,
        "trackingPlanId": plan.meta.get("trackingPlanId"),
        "rules": len(plan.rules),
        "by_type": by_type,
        "out": str(out) if out is not None else None,
        "plan": plan.as_file() if out is None else None,
    }
