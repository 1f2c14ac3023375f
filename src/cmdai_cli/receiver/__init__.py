"""A local Segment Tracking API: what `cmdai listen` serves and `send-test --local` uses.

- `protocol`: Segment's answers (paths, bodies, write keys, limits) as a server gives them
- `server`: the HTTP server, with bounded bodies and connections
- `store`: the `Receiver`, which stores, flags and shows what arrived
- `kept`: what a receiver holds in memory (bounded), its counts and queries
- `inspection`: the inspection API (`/cmdai/summary`, `/cmdai/messages`, `/cmdai/reset`)
- `listen`: the `cmdai listen` serve loop, until Ctrl-C or SIGTERM
- `local`: one message through the real Segment client to a receiver started for it
"""

from cmdai_cli.receiver.store import Received, Receiver, Stats

__all__ = ["Received", "Receiver", "Stats"]
