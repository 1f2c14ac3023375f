"""What Command AI records from Segment events: a pure, documented public API.

The rules themselves (`paths`, `kit`, `webhook`, `destination`) do no I/O and import
nothing outside the standard library, so the same rules can run inside a user's own
pipeline (a Spark UDF, a DuckDB Python function) when one machine is not enough.

Two targets:

* **webhook** -- Segment's Webhooks destination builds a body from each event with a
  mapping (its ``data`` field), and Command AI's webhook records user properties from
  it: ``webhook.map_webhook(event, mapping)``.
* **destination** -- the Command AI (CommandBar) device-mode destination turns each
  event into one Command AI SDK call: ``destination.map_destination(event, deploy=...)``.

Every ``map_*`` function returns a `Mapped` pair ``(record, problem)``: ``record`` is the
output record (without its ``index``) and ``problem`` is None; or ``record`` is None and
``problem`` says why the event is a bad record. A record whose ``ignored`` is not None
says why nothing is recorded for that event. They never raise on any JSON value.

The rest is I/O around the rules: `file` loads a mapping file and resolves which
mapping is in force; `pipeline` runs a stream of events through a target and writes
one record per event, with its counts (`MapResult`).
"""

from __future__ import annotations

from typing import Any

Mapped = tuple[dict[str, Any] | None, str | None]

# Reasons are part of the output contract: keep them stable.
NO_USER_ID = "no userId"
BAD_USER_ID = "userId is not a string or number"
NOT_AN_OBJECT = "event is not a JSON object"
TRAITS_NOT_OBJECT = "traits is not an object"
TRACK_NO_EVENT = "track without event"
NO_TYPE = "event has no type"
