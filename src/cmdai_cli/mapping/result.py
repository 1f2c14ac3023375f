"""What every mapper returns, and the reasons it gives.

A mapper returns ``(record, problem)``: ``record`` is the output record (without its
``index``) and ``problem`` is None; or ``record`` is None and ``problem`` says why the
event is a bad record. A record whose ``ignored`` is not None says why nothing is
recorded for that event.
"""

from __future__ import annotations

from typing import Any

Result = tuple[dict[str, Any] | None, str | None]

# Reasons are part of the output contract: keep them stable.
NO_USER_ID = "no userId"
BAD_USER_ID = "userId is not a string or number"
NOT_AN_OBJECT = "event is not a JSON object"
TRAITS_NOT_OBJECT = "traits is not an object"
TRACK_NO_EVENT = "track without event"
NO_TYPE = "event has no type"
