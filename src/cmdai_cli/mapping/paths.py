"""`$.` paths: the directives of a webhook mapping that point into an event.

``$.properties.plan``, ``$.context.traits.email``, ``$.items[0].sku``,
``$.traits["first name"]``; ``$.`` alone is the whole event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MISSING", "Key", "format_path", "lookup", "parse_path"]

Key = str | int
MISSING: Any = object()
"""What `lookup` returns when the path finds nothing (a found null is None)."""

_PATH_TOKEN = re.compile(
    r"""
    \.(?P<name>[^.\[\]"']+)              # .name
    | \[(?P<index>\d+)\]                 # [0]
    | \["(?P<dq>(?:[^"\\]|\\.)*)"\]      # ["any name"]
    | \['(?P<sq>(?:[^'\\]|\\.)*)'\]      # ['any name']
    """,
    re.VERBOSE,
)
_PLAIN_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")
_UNESCAPE = re.compile(r"\\(.)")


def parse_path(path: str) -> tuple[Key, ...]:
    """The keys of a `$.` path; `$.` alone is the whole event (no keys).

    Raises ValueError (with the reason) when the syntax is wrong.
    """
    if not path.startswith("$."):
        raise ValueError("a path must start with '$.'")
    if path == "$.":
        return ()
    # `$.a` is `$` then `.a`; `$.["a b"]` is also accepted, as Segment's editor writes it.
    rest = path[1:]
    if rest.startswith(".["):
        rest = rest[1:]
    keys: list[Key] = []
    pos = 0
    while pos < len(rest):
        match = _PATH_TOKEN.match(rest, pos)
        if match is None:
            raise ValueError(f"unexpected {rest[pos : pos + 10]!r} at character {pos + 2}")
        if match.group("name") is not None:
            keys.append(match.group("name"))
        elif match.group("index") is not None:
            keys.append(int(match.group("index")))
        else:
            quoted = match.group("dq") if match.group("dq") is not None else match.group("sq")
            keys.append(_UNESCAPE.sub(r"\1", quoted))
        pos = match.end()
    return tuple(keys)


def format_path(keys: Iterable[Key]) -> str:
    """The `$.` path text of `keys`, quoting names that plain dots cannot carry."""
    text = "$"
    for key in keys:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _PLAIN_NAME.match(key):
            text += "." + key
        else:
            text += '["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    if text == "$":
        return "$."
    # A path must start `$.`; a leading bracket is written `$.[...]`, as Segment does.
    return text if text.startswith("$.") else "$." + text[1:]


def lookup(event: Any, keys: tuple[Key, ...]) -> Any:
    """The value at `keys` in `event`, or MISSING."""
    value = event
    for key in keys:
        kind = type(value)
        if kind is dict:
            if type(key) is not str:
                return MISSING
            value = value.get(key, MISSING)
            if value is MISSING:
                return MISSING
        elif kind is list:
            if type(key) is not int or key >= len(value):
                return MISSING
            value = value[key]
        else:
            return MISSING
    return value
