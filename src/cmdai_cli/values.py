"""Rules for the values of settings: URLs, write keys and profile names; and how a
counted noun reads (`plural`), for every message that counts.

Each check returns the value as it is to be used, or raises `UsageError` saying why not.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
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
    """An http(s) URL, checked whole: https required unless the host is a loopback address.

    The host must be a DNS name or an IP address, the port (if any) 1-65535, and nothing
    may hold spaces or control characters. A base URL (`base=True`), to which paths are
    joined, may not have a query or fragment and loses its trailing slash.
    """
    refuse_credentials(value, what=what)
    text = value.strip()
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise UsageError(f"{what} {value!r} holds spaces or control characters")
    try:
        parts = urlsplit(text)
        parts.hostname  # noqa: B018 - parsed lazily: a bracket left open raises here
    except ValueError as exc:
        raise UsageError(f"{what} {value!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what} {value!r} is not an http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{what} {value!r}: the port is not a number from 1 to 65535") from None
    if port == 0:
        raise UsageError(f"{what} {value!r}: the port is not a number from 1 to 65535")
    if not _is_host(parts.hostname):
        raise UsageError(f"{what} {value!r}: {parts.hostname!r} is not a host name or address")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"{what} {value!r} must use https (plain http is allowed only on loopback)"
        )
    if base and (parts.query or parts.fragment or text.endswith(("?", "#"))):
        raise UsageError(f"{what} {value!r} must not have a query or fragment")
    return text.rstrip("/") if base else text


def refuse_credentials(value: str, *, what: str) -> None:
    """UsageError for a URL with credentials in it (`user:password@host`), never echoing
    them: the one message for every URL option, before any other check of the URL."""
    _, sep, rest = value.strip().partition("://")
    if not sep:
        return
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise UsageError(
            f"{what} must not carry credentials in the URL (user:password@host)",
            hint="give the credentials with the command's own option, or in the profile",
        )


# A DNS name: dot-separated labels of letters, digits, '-' (and '_', which private
# networks use), none empty, none starting or ending with '-'.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False  # looks like an IPv4 address, but is not one
    return all(_LABEL.match(label) for label in labels)


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
        raise UsageError(
            f"the write key has {len(key)} {plural(len(key), 'character')}; expected 8 to 200"
        )
    return key


def check_profile_name(name: str) -> str:
    if not PROFILE_NAME_RE.match(name):
        raise UsageError(
            f"profile name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, at most 63 characters"
        )
    return name


def parse_property(pair: str) -> tuple[str, Any]:
    """`K=V` from a `--property` flag: V is read as JSON when it parses (3, true, {...}),
    else as text."""
    key, sep, raw = pair.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--property {pair!r} is not KEY=VALUE")
    try:
        value: Any = json.loads(raw)
    except RecursionError:
        raise UsageError(
            f"--property {key.strip()}: nested too deeply (over 1024 levels)"
        ) from None
    except ValueError:
        value = raw
    problem = json_problem(value)
    if problem is not None:
        raise UsageError(f"--property {key.strip()}: {problem}")
    return key.strip(), value


# ---------------------------------------------------------------- saying why a value is wrong

_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def must_be(error: Mapping[str, Any], choices: Sequence[str] | None = None) -> str:
    """What a value must be, from a pydantic error (`ValidationError.errors()` item).

    In the words of a usage error ("must be one of eu, us (got 'mars')"), not pydantic's
    ("Input should be 'us' or 'eu'"): the caller puts the flag or variable before it.
    `choices`, when known, are the accepted values.
    """
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if choices is None and kind in ("enum", "literal_error"):
        choices = _QUOTED.findall(str(ctx.get("expected", "")))
    if choices:
        text = "must be one of " + ", ".join(sorted(choices))
    elif kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        text = f"must be {words} {ctx.get(key)}"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        text = "must be a whole number"
    elif kind in ("float_parsing", "float_type"):
        text = "must be a number"
    elif kind == "finite_number":
        text = "must be a finite number"
    elif kind in ("bool_parsing", "bool_type"):
        text = "must be true or false"
    elif kind == "extra_forbidden":
        return "is not a known key"
    elif kind == "value_error" and ctx.get("error") is not None:
        text = str(ctx["error"])
    else:
        message = str(error.get("msg", "is not valid"))
        text = re.sub(r"^Input should be\b", "must be", message)
    if "input" in error and not isinstance(error["input"], (dict, list)):
        text += f" (got {error['input']!r})"
    return text


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "less_than_equal": ("at most", "le"),
    "greater_than": ("more than", "gt"),
    "less_than": ("less than", "lt"),
}


def plural(count: int, noun: str) -> str:
    """`noun` as it goes after `count`: "1 event", "2 events" (a regular plural only)."""
    return noun if count == 1 else noun + "s"


# What a person writes as one value: deeper than this is a mistake (and would exhaust
# the recursion of the code that encodes or compares it).
MAX_VALUE_DEPTH = 64


def json_problem(value: Any) -> str | None:
    """Why `value` cannot be sent as JSON (Infinity or NaN, a date, too deep), else None."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_VALUE_DEPTH:
            return f"nested too deeply (over {MAX_VALUE_DEPTH} levels)"
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{item!r} is not a JSON number (JSON has no Infinity or NaN)"
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            return f"a {type(item).__name__} is not a JSON value: write it as a string"
    return None
