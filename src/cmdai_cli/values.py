"""Rules for the values of settings: URLs, write keys and profile names.

Each check returns the value as it is to be used, or raises `UsageError` saying why not.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from cmdai_cli.errors import UsageError

PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(value: str, *, what: str = "host", base: bool = True) -> str:
    """An http(s) URL: https required unless the host is a loopback address.

    A base URL (`base=True`) loses its trailing slash, since paths are joined to it.
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what} {value!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"{what} {value!r} must use https (plain http is allowed only on loopback)"
        )
    if parts.username or parts.password:
        raise UsageError(f"{what} must not carry credentials in the URL")
    return value.strip().rstrip("/") if base else value.strip()


def check_write_key(key: str) -> str:
    if key == "":
        raise UsageError("the write key is empty")
    if any(ch.isspace() for ch in key):
        raise UsageError("the write key contains whitespace")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise UsageError("the write key contains control characters")
    if not key.isascii() or not key.isprintable():
        raise UsageError("the write key must be printable ASCII")
    if not 8 <= len(key) <= 200:
        raise UsageError(f"the write key has {len(key)} characters; expected 8 to 200")
    return key


def check_profile_name(name: str) -> str:
    if not PROFILE_NAME_RE.match(name):
        raise UsageError(
            f"profile name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, at most 63 characters"
        )
    return name
