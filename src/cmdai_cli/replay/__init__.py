"""`cmdai replay`: resend recorded events to Segment, the webhook, or bulk-identify.

Modules, in the order an event meets them: `options` (what was asked), `setup` (inputs,
target, checkpoint and error files), `select` (filters, shards, messageIds), `targets`
(what each target sends, and one request to it), `batching` (requests within the
target's limits), `delivery` (requests in flight, the retry schedule; its brakes in
`delivery_control`, its recording thread in `delivery_record`), `posting` (Segment
batches from a worker process), `checkpoint` (durable progress), `errorlog` (reject and dead-letter
files), `run` (the read -> select -> batch -> deliver loop) and `summary` (what it came to).
"""

from cmdai_cli.replay.options import EventSource, ReplayOptions
from cmdai_cli.replay.run import replay
from cmdai_cli.replay.summary import Progress, Summary

__all__ = ["EventSource", "Progress", "ReplayOptions", "Summary", "replay"]
