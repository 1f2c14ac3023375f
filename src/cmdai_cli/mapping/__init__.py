"""What Command AI records from Segment events: a pure, documented public API.

The rules themselves (`paths`, `kit`, `webhook`, `destination`, `result`) do no I/O and import
nothing outside the standard library, so the same rules can run inside a user's own
pipeline (a Spark UDF, a DuckDB Python function) when one machine is not enough.

Two targets:

* **webhook** -- Segment's Webhooks destination builds a body from each event with a
  mapping (its ``data`` field), and Command AI's webhook records user properties from
  it: ``webhook.map_webhook(event, mapping)``.
* **destination** -- the Command AI (CommandBar) device-mode destination turns each
  event into one Command AI SDK call: ``destination.map_destination(event, deploy=...)``.

Every ``map_*`` function returns ``(record, problem)`` (see `result`). They never raise
on any JSON value.

The rest is I/O around the rules: `file` loads a mapping file and resolves which
mapping is in force; `pipeline` runs a stream of events through a target and writes
one record per event, with a tally.
"""
