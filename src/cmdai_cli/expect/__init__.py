"""`cmdai expect`: assert what a collector (`cmdai listen`, or its capture file) received.

- `expectations`: what should be there, from flags or a TOML file (errors name the line)
- `sources`: a running collector through its inspection API, or a capture file
- `check`: counting matches, the nearest messages, flagged messages, the catalogue check
- `run`: looking again until all holds or the time is up (`--within`)
"""
