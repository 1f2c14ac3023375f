"""A local Segment Tracking API: what `cmdai listen` serves and `send-test --local` uses
(`probe.send_local`).

- `protocol`: Segment's answers (paths, bodies, write keys, limits) as a server gives them
- `routes`: what each request is answered (a `Request` in, one `Response` out)
- `browser`: what analytics.js needs besides: CORS and the CDN settings document
- `inspection`: the inspection API (`/cmdai/summary`, `/cmdai/messages`, `/cmdai/reset`)
- `exchange`: `Request` and `Response`, the values between the transport and the routes
- `server`: the HTTP transport (asyncio, h11), its connection slots and after-work threads
- `connection`: one client connection, its deadlines and bounded bodies; the one place
  answers are written
- `store`: what a receiver holds: the messages (bounded), its counts, the `out` file
- `options`: `ListenOptions`, what a receiver (and `cmdai listen`) is set up with
- `service`: the `Receiver`, the store behind the routes and the server, started as one
- `listen`: the `cmdai listen` run, until Ctrl-C, SIGTERM, enough messages or time
"""

from cmdai_cli.receiver.options import ListenOptions
from cmdai_cli.receiver.service import Receiver
from cmdai_cli.receiver.store import Received, Stats

__all__ = ["ListenOptions", "Received", "Receiver", "Stats"]
