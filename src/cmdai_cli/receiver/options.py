"""What `cmdai listen` was asked to do, and the checks on it that need nothing else.

A `Receiver` takes the serving part (address, key, `out`, what it keeps, its limits);
`listen.run` the rest (a tracking plan, the ready file, when to stop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cmdai_cli.errors import UsageError
from cmdai_cli.receiver.connection import Limits


@dataclass(frozen=True)
class ListenOptions:
    """A receiver's settings, and a listen's; defaults suit a receiver in a test.

    `write_key`: when set, requests should carry it (Basic auth or body `writeKey`);
    others are flagged, or refused with 401 when `reject_wrong_key`. The settings
    document analytics.js loads is served for it alone (404 for other keys, as Segment's
    CDN answers an unknown key), or for any key when no `write_key` is set.
    `out`: a file that gets one NDJSON line per accepted message before it is answered.
    The last `keep` messages stay in memory; a repeated messageId is flagged among the
    last `remember_ids`.
    """

    bind: str = "127.0.0.1"
    port: int = 0
    write_key: str | None = None
    reject_wrong_key: bool = False
    out: Path | None = None
    keep: int = 10_000  # `cmdai listen --keep` defaults to 100,000
    remember_ids: int = 100_000
    limits: Limits = field(default_factory=Limits)
    plan: Path | None = None
    # The Source Debugger's token (`--ui-token`): off loopback one is made up when not given.
    ui_token: str | None = None
    ready_file: Path | None = None
    exit_after: int | None = None
    max_duration: float | None = None

    def __post_init__(self) -> None:
        if self.reject_wrong_key and self.write_key is None:
            raise UsageError("--reject-wrong-key needs --write-key")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port {self.port} is not a port number (0-65535)")
        if self.keep < 0:
            raise UsageError(f"--keep {self.keep}: give 0 or more messages")
        if self.exit_after is not None and self.exit_after < 1:
            raise UsageError(f"--exit-after {self.exit_after}: give 1 or more messages")
        if self.max_duration is not None and not self.max_duration > 0:
            raise UsageError(
                f"--max-duration {self.max_duration}: give a number of seconds above 0"
            )
        if self.ui_token is not None and (
            len(self.ui_token) < 8
            or not self.ui_token.isascii()
            or not self.ui_token.isprintable()
            or any(c in self.ui_token for c in " ;,")
        ):
            raise UsageError(
                "--ui-token: give at least 8 printable ASCII characters, without spaces, "
                "commas or semicolons"
            )
        if self.write_key is not None and not self.write_key.strip():
            # An empty key would silently turn the check off: say so instead.
            raise UsageError(
                "--write-key is empty: give the key clients must send, "
                "or leave the option out to accept any key"
            )
