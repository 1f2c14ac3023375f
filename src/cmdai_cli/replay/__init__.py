"""`cmdai replay`: resend recorded events to Segment, the webhook, or bulk-identify.

Modules, in the order an event meets them: `options` (what was asked), `setup` (inputs,
target, checkpoint and error files), `select` (filters, shards, messageIds), `targets`
(what each target sends, and one request to it), `batching` (requests within the
target's limits), `delivery` (requests in flight, the retry schedule; its brakes in
`delivery_control`, its answers, counters and recording thread in `delivery_record`),
`posting` (Segment batches from a worker process), `checkpoint` (durable progress),
`errorlog` (reject and dead-letter files), `run` (the read -> select -> batch -> deliver
loop, `replay`) and `result` (what it came to, `ReplayResult`).

Nothing is imported here: `commandai` takes its `Answer` from `delivery_record`, and a
package that loaded `run` (hence `targets`, hence `commandai`) on the way would make
that an import loop.
"""
