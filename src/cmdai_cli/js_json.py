"""JSON text byte for byte as JavaScript's `JSON.stringify` writes it.

Segment's Webhooks (Actions) destination sends `JSON.stringify` of the mapped payload
and signs `JSON.stringify` of it (segmentio/action-destinations,
`packages/destination-actions/src/destinations/webhook/index.ts`, `extendRequest`:
`createHmac('sha1', sharedSecret).update(JSON.stringify(payloadData))`; the body comes
from the request's `json` option, `packages/core/src/request-client.ts`). A receiver
that checks `X-Signature` against the body it received sees those bytes, so cmdai
sends the same ones. Where JavaScript and Python differ (ECMA-262, Number::toString
and SerializeJSONProperty / QuoteJSONString / OrdinaryOwnPropertyKeys):

* numbers are doubles: `1.0` prints `1`, `-0` prints `0`, `1e16` prints
  `10000000000000000`, `1e21` prints `1e+21`, `1e-7` prints `1e-7`; an integer beyond
  2^53 prints as the nearest double does; NaN and the infinities print `null`;
* an object's integer-like keys (array indices: "0" to "4294967294", no leading zero)
  come first, in ascending order, then the other keys in insertion order;
* strings escape `"`, `\\`, and characters below U+0020 (`\\b \\t \\n \\f \\r`, else
  `\\u00xx`), and a lone surrogate as `\\udxxx`; everything else, U+2028 included, is
  written as UTF-8.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

__all__ = ["dumps"]

_MAX_SAFE = 2**53
_MAX_INDEX = 2**32 - 2
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE = re.compile('["\\\\\x00-\x1f\ud800-\udfff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_SHORT["\r"] = "\\r"
# In orjson's output, what JSON.stringify may write otherwise: a float (always with a
# point or an exponent), an integer of 16 digits or more, a key starting with a digit.
# A match inside a string only costs the slow path; no difference goes unmatched.
_MAYBE_DIFFERENT = re.compile(rb'[:\[,](?:-?[0-9]+[.eE]|-?[0-9]{16})|[{,]"[0-9]|^-?[0-9]')


def dumps(value: Any) -> bytes:
    """`JSON.stringify(value)` as UTF-8 bytes, for the JSON values Python reads.

    Raises TypeError for anything that is not a JSON value (or a key that is not a
    string).
    """
    # Most bodies are written the same by both: orjson's bytes, once checked, are kept.
    try:
        fast = orjson.dumps(value)
    except TypeError:
        pass
    else:
        if _MAYBE_DIFFERENT.search(fast) is None:
            return fast
    parts: list[str] = []
    _encode(value, parts.append)
    return "".join(parts).encode("utf-8", "surrogatepass")


def _encode(value: Any, out: Any) -> None:
    kind = type(value)
    if kind is str:
        out(_string(value))
    elif kind is dict:
        if not value:
            out("{}")
            return
        out("{")
        first = True
        for key, item in _ordered(value):
            if not first:
                out(",")
            first = False
            out(_string(key))
            out(":")
            _encode(item, out)
        out("}")
    elif kind is list or kind is tuple:
        if not value:
            out("[]")
            return
        out("[")
        for index, item in enumerate(value):
            if index:
                out(",")
            _encode(item, out)
        out("]")
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif kind is int:
        out(str(value) if -_MAX_SAFE <= value <= _MAX_SAFE else _big_int(value))
    elif kind is float:
        out(number(value))
    elif isinstance(value, bool):
        out("true" if value else "false")
    elif isinstance(value, int):
        _encode(int(value), out)
    elif isinstance(value, float):
        out(number(float(value)))
    elif isinstance(value, str):
        out(_string(str(value)))
    elif isinstance(value, dict):
        _encode(dict(value), out)
    elif isinstance(value, (list, tuple)):
        _encode(list(value), out)
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def _ordered(mapping: dict[Any, Any]) -> list[tuple[str, Any]]:
    """The object's entries in JavaScript's own-property order."""
    indices: list[tuple[int, str, Any]] = []
    others: list[tuple[str, Any]] = []
    for key, item in mapping.items():
        if type(key) is not str:
            raise TypeError(f"object keys must be strings, not {type(key).__name__}")
        if _is_index(key):
            indices.append((int(key), key, item))
        else:
            others.append((key, item))
    if not indices:
        return others
    indices.sort(key=lambda entry: entry[0])
    return [(key, item) for _, key, item in indices] + others


def _is_index(key: str) -> bool:
    if not key or not key.isascii() or not key.isdigit():
        return False
    if key[0] == "0":
        return key == "0"
    return len(key) <= 10 and int(key) <= _MAX_INDEX


def _string(text: str) -> str:
    if _SURROGATE.search(text) is not None:
        # A high and a low surrogate side by side are one character to JavaScript's
        # UTF-16 strings: join them; only the lone ones are left to escape.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        if _SURROGATE.search(text) is not None:
            return '"' + _ESCAPE.sub(_escape, text) + '"'
    # orjson escapes exactly as JSON.stringify does for text without surrogates.
    return orjson.dumps(text).decode("utf-8")


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def _big_int(value: int) -> str:
    try:
        return number(float(value))
    except OverflowError:
        # Past the largest double JavaScript reads Infinity, which prints null.
        return "null"


def number(value: float) -> str:
    """ECMAScript's Number::toString for a double, as JSON.stringify writes it."""
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr is the shortest text that reads back as the same double, as JavaScript's is.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    digits = significant.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        power = n - 1
        shown = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{shown}e{'+' if power >= 0 else '-'}{abs(power)}"
    return sign + text
