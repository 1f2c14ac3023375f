"""What `cmdai listen` was asked to do, and the checks on it that need nothing else.

A `Receiver` takes the serving part (address, key, `out`, what it keeps, its limits);
`listen.run` the rest (a tracking plan, the ready file, when to stop, the forward).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cmdai_cli import redact
from cmdai_cli.errors import UsageError
from cmdai_cli.receiver.connection import Limits
from cmdai_cli.retry import RetryPolicy

# A target down for a minute or two is waited for; past that a message is dead-lettered.
POLICY = RetryPolicy(max_retries=10, base_delay=0.25, max_delay=15.0, max_total_wait=120.0)
SELF = "--forward-to is this listen itself: every message would come back to it for ever"


@dataclass(frozen=True)
class ForwardOptions:
    """Where and how `listen` forwards: `url` is a base, the request's path goes under it.

    `headers` are added to every forwarded request; `rewrite_key` replaces the app's
    write key; `dead_letter` gets the messages whose forward failed for good; `drain`
    is how long a stop waits for forwards still open; `buffer` is how many messages may
    wait for the target at once (more go to the dead letter, so that a target down for
    long cannot fill memory).
    """

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    rewrite_key: str | None = None
    dead_letter: Path | None = None
    drain: float = 10.0
    # As many as listen keeps by default (`--keep`): the memory a listen already takes.
    buffer: int = 100_000
    policy: RetryPolicy = POLICY
    concurrency: int = 32
    timeout: float = 15.0

    def __post_init__(self) -> None:
        check_target(self.url)
        if not self.drain >= 0:
            raise UsageError(f"--drain {self.drain}: give a number of seconds, 0 or more")
        if self.buffer < 1:
            raise UsageError(f"--forward-buffer {self.buffer}: give 1 or more messages")
        if self.rewrite_key is not None and not self.rewrite_key.strip():
            raise UsageError("--forward-rewrite-key is empty: give the key to send instead")
        redact.register(self.rewrite_key)


def check_target(url: str) -> str:
    """`url` when it can be forwarded to; UsageError naming what is wrong otherwise."""
    parts = urlsplit(url)
    # The URL itself is not echoed: it may hold a password.
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError("--forward-to: give a URL that starts with http:// or https://")
    if not parts.hostname:
        raise UsageError("--forward-to: the URL has no host")
    if parts.username is not None or parts.password is not None:
        # A password in a URL ends up in logs and process lists; the app's key goes as it came.
        raise UsageError(
            "--forward-to: the URL holds credentials; the app's write key is forwarded as "
            "it came (or --forward-rewrite-key), and other headers with --forward-header"
        )
    if parts.query or parts.fragment:
        raise UsageError("--forward-to: give the URL without a query string or fragment")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise UsageError("--forward-to: the URL's port is not a number") from None
    return url


def parse_header(text: str) -> tuple[str, str]:
    """`K:V` as a header name and value (UsageError when it is not one)."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or "\n" in value or "\r" in value:
        raise UsageError(f"--forward-header {text!r}: give NAME:VALUE")
    if name.lower() in (
        "host",
        "content-length",
        "content-encoding",
        "content-type",
        "transfer-encoding",
    ):
        raise UsageError(f"--forward-header: {name} is set by the forwarded request itself")
    return name, value


def is_self(url: str, bind: str, port: int) -> bool:
    """Whether `url` reaches a listen bound to `bind`:`port` (port 0: not known yet).

    Addresses are compared, and `localhost`; other names are not looked up (that could
    wait on DNS). A target of 0.0.0.0 or :: reaches this machine's loopback (Linux
    connects it there); a listen bound to one of those takes every address of this
    machine, and one bound to an address takes that address alone (127.0.0.2 does not
    reach a listen on 127.0.0.1).
    """
    parts = urlsplit(url)
    target_port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    if port == 0 or target_port != port:
        return False
    targets = _addresses(parts.hostname or "")
    if not targets:
        return False
    bound = _addresses(bind)
    if not bound or any(address.is_unspecified for address in bound):
        return any(address.is_loopback or _is_local(address) for address in targets)
    return bool(targets & bound)


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def _addresses(host: str) -> set[_Address]:
    """The addresses `host` stands for when it is an address or `localhost` (an
    unspecified address stands for the loopback); empty for any other name."""
    host = host.strip("[]").lower()
    if host in ("localhost", ""):
        return set(_LOOPBACK) if host else set()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return set()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return {_LOOPBACK[address.version == 6], address}
    return {address}


def _is_local(address: _Address) -> bool:
    """Whether `address` is one of this machine's: only those can be bound."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


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
    # `--forward-to` and its options: each accepted request sent on (`forward`).
    forward: ForwardOptions | None = None

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
        if self.forward is not None and is_self(self.forward.url, self.bind, self.port):
            raise UsageError(SELF)
        if self.write_key is not None and not self.write_key.strip():
            # An empty key would silently turn the check off: say so instead.
            raise UsageError(
                "--write-key is empty: give the key clients must send, "
                "or leave the option out to accept any key"
            )
