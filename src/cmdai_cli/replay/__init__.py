"""`cmdai replay`: resend recorded events to Segment, the webhook, or bulk-identify.

Modules, in the order an event meets them: `select` (filters, shards, messageIds),
`targets` (what each target sends, and one request to it), `batching` (requests within
the target's limits), `delivery` (workers, rate, retries), `checkpoint` (durable
progress), `errorlog` (reject and dead-letter files), and `run`, which ties them up.
"""

from cmdai_cli.replay.run import Progress, ReplayOptions, Summary, replay

__all__ = ["Progress", "ReplayOptions", "Summary", "replay"]
