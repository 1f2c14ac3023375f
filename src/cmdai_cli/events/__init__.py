"""Streams of Segment events: where they come from, how they are read, how records go out.

* `inputs` -- files, directories, glob patterns, URLs and `-` (stdin) as a list of
  inputs, and each input's bytes, gunzipped when they start as gzip.
* `storage` -- URLs through fsspec (`s3://`, `gs://`, ...): listing with sizes and
  versions, streams, the next object fetched ahead.
* `archive` -- Segment's S3 archive layout: which day folders `--since` skips.
* `records` -- what reading yields (`Event`, `BadRecord`) and the error policy that
  decides what a bad record does (`fail` or `skip`).
* `reader` -- every event of every input, in order, in batches: the NDJSON fast path
  and the choice of layout.
* `scan` -- the slower path for what is not one value a line (JSON arrays,
  pretty-printed values, values one after another).
* `writers` -- indexed records out as NDJSON or as one JSON array.
"""

# A record (a line, or one JSON value) larger than this is a bad record, found without
# holding more than about this much of it. 32 times Segment's 32 KB message limit, so
# that pretty-printed events and webhook payloads fit (`--max-record-bytes` changes it).
# Here rather than in `records` so that the commands' option defaults load nothing more.
DEFAULT_MAX_RECORD_BYTES = 1 << 20
