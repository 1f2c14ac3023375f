"""Events and settings shared by the mapping tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmdai_cli.profile import Resolved

IDENTIFY = {
    "type": "identify",
    "userId": "u1",
    "traits": {"plan": "pro", "email": "a@example.com"},
    "context": {"CommandBar": {"hmac": "h1", "formFactor": {"type": "modal"}}},
}
TRACK = {
    "type": "track",
    "userId": "u2",
    "event": "Plan Upgraded",
    "properties": {"plan": "enterprise", "seats": 10},
    "context": {"traits": {"email": "b@example.com"}},
}


def settings_with(profile: str = "default", **values: Any) -> Resolved:
    """Resolved settings of `profile` in /config/config.toml holding `values`."""
    return Resolved(
        profile=profile,
        path=Path("/config/config.toml"),
        exists=True,
        values=values,
        sources={},
    )
