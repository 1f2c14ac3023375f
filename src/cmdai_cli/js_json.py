"""JSON as JavaScript reads it (`JSON.parse`) and writes it (`JSON.stringify`), byte for byte.

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

Reading (`loads`) is `JSON.parse`'s: orjson reads every record it can, and only what
orjson refuses that JavaScript reads takes the slow road here (ECMA-262 JSON.parse,
InternalizeJSONProperty; V8 parses iteratively, with no depth limit of its own):

* a lone surrogate escape (`"\\ud800"`) is kept as that code unit, a surrogate pair
  escape is one character, as JavaScript's UTF-16 strings hold them;
* a number beyond the double range (`1e400`) reads as an infinity (these two through the
  standard library's scanner, in C, told that NaN and Infinity are not JSON);
* nesting deeper than orjson's 1,024 levels is read, with memory bounded by the record
  (the parser keeps an explicit stack, never Python's);
* on the slow road `-0` reads as the double -0.0, as JavaScript holds it; orjson's integer
  0 for it on the fast path is written the same by every writer (`JSON.stringify(-0)` and
  `String(-0)` are both "0").

What is not JSON to JavaScript either (a trailing comma, invalid UTF-8, raw control
characters in a string) raises orjson's own error, so reasons read as before.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, AnyStr, cast

import orjson

__all__ = ["compact", "dumps", "loads"]


class _Lazy:
    """A pattern compiled on first use. The readers and writers import this module for
    the records orjson cannot handle; compiling every pattern up front added about 1 ms
    to each run's start (measured with `python -c "import cmdai_cli.js_json"`)."""

    def __init__(self, pattern: str | bytes) -> None:
        self._pattern = pattern

    def __getattr__(self, name: str) -> Any:
        # Called only until the attribute is set: later uses cost a plain lookup.
        value = getattr(re.compile(self._pattern), name)
        setattr(self, name, value)
        return value


def _pattern(text: AnyStr) -> re.Pattern[AnyStr]:
    return cast("re.Pattern[AnyStr]", _Lazy(text))


_MAX_SAFE = 2**53
_MAX_INDEX = 2**32 - 2
_SURROGATE = _pattern("[\ud800-\udfff]")
_ESCAPE = _pattern('["\\\\\x00-\x1f\ud800-\udfff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_SHORT["\r"] = "\\r"
# In orjson's output, what JSON.stringify may write otherwise: a float (always with a
# point or an exponent), an integer of 16 digits or more, a key starting with a digit.
# A match inside a string only costs the slow path; no difference goes unmatched.
_MAYBE_DIFFERENT = _pattern(rb'[:\[,](?:-?[0-9]+[.eE]|-?[0-9]{16})|[{,]"[0-9]|^-?[0-9]')

# orjson's refusals that JavaScript reads: only these take the slow road.
_JS_READS = ("surrogate", "infinity when parsed", "depth limit exceeded")
_TOKEN = _pattern(
    rb"[ \t\n\r]*(?:"
    rb"([\[\]{},:])"
    rb'|"((?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*)"'
    rb"|(-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)"
    rb"|(true|false|null))"
)
_SPACE = _pattern(rb"[ \t\n\r]*")
_ARRAYS_OPENED = _pattern(rb"[ \t\n\r]*\[(?:[ \t\n\r]*\[)*")
_OBJECT_OPENED = _pattern(rb'[ \t\n\r]*\{[ \t\n\r]*"([^"\\\x00-\x1f]*)"[ \t\n\r]*:')
_CLOSING = _pattern(rb"[ \t\n\r]*([\]}])")
_UNESCAPE = _pattern(r"\\(u[0-9a-fA-F]{4}|.)")
_UNESCAPED = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}
_UNESCAPED["t"] = "\t"
_LITERALS = {b"true": True, b"false": False, b"null": None}
_INT_RANGE = (-(2**63), 2**64 - 1)  # orjson's integers; past them it reads a double
_DONE = object()


def loads(data: bytes | str) -> Any:
    """`JSON.parse(data)`, with orjson for every record it reads.

    Raises orjson.JSONDecodeError (a ValueError) for what JavaScript refuses too.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        value = slow_loads(data, exc)
        if value is _DONE:
            raise
        return value


def slow_loads(data: bytes | str, error: Exception) -> Any:
    """The value orjson refused with `error`, read as JSON.parse reads it.

    Returns the module's `NOT_JSON` when JavaScript refuses it too (or the refusal is
    one JavaScript shares), so callers keep orjson's reason.
    """
    if not any(part in str(error) for part in _JS_READS):
        return _DONE
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        # The standard library's scanner, in C, reads these as JSON.parse does, once
        # told that NaN and Infinity are not JSON; it recurses, so the deep go on.
        return json.loads(text, parse_constant=_refuse, parse_int=_integer)
    except RecursionError:
        pass
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return _DONE
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        return _parse(raw)
    except (ValueError, IndexError):
        return _DONE


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _integer(text: str) -> int | float:
    return _number(text.encode(), None)


NOT_JSON = _DONE
"""What `slow_loads` returns when the text is not JSON to JavaScript either."""


def _parse(data: bytes) -> Any:
    """JSON.parse for what the standard library's scanner cannot: nesting past Python's
    recursion. Runs of brackets (the shape of deep nesting) are taken a run at a time."""
    # Containers open so far, and for objects the key waiting for its value.
    stack: list[Any] = []
    keys: list[Any] = []
    root: Any = None
    pos = 0
    # What may come next: "value", "value]" (an array's first), "key}" (an object's
    # first key), "key", ",]" / ",}" (after an item), ":" (after a key), "end".
    want = "value"
    token = _TOKEN.match
    while True:
        if want == "end":
            if _SPACE.match(data, pos).end() != len(data):  # type: ignore[union-attr]
                raise ValueError("unexpected content after the value")
            return root
        if want in ("value", "value]"):
            run = _ARRAYS_OPENED.match(data, pos)
            if run is not None:
                count = run.group().count(b"[")
                stack.extend([] for _ in range(count))
                keys.extend([None] * count)
                pos = run.end()
                want = "value]"
                continue
            opened = _OBJECT_OPENED.match(data, pos)
            if opened is not None:
                stack.append({})
                keys.append(opened.group(1).decode("utf-8"))
                pos = opened.end()
                want = "value"
                continue
        found = token(data, pos)
        if found is None:
            raise ValueError("unexpected character")
        pos = found.end()
        mark = found.group(1)
        if want in ("key", "key}"):
            if mark == b"}" and want == "key}":
                value = stack.pop()
                keys.pop()
            elif found.group(2) is not None:
                keys[-1] = _text(found.group(2))
                want = ":"
                continue
            else:
                raise ValueError("expected a key")
        elif want == ":":
            if mark != b":":
                raise ValueError("expected ':'")
            want = "value"
            continue
        elif want in (",]", ",}"):
            if mark == b",":
                want = "value" if want == ",]" else "key"
                continue
            raise ValueError("expected ',' or a closing bracket")
        elif mark == b"{":
            stack.append({})
            keys.append(None)
            want = "key}"
            continue
        elif mark == b"]" and want == "value]":
            value = stack.pop()
            keys.pop()
        elif mark is not None:
            raise ValueError("expected a value")
        elif found.group(2) is not None:
            value = _text(found.group(2))
        elif found.group(3) is not None:
            value = _number(found.group(3), found.group(4) or found.group(5))
        else:
            value = _LITERALS[found.group(6)]
        # A value is complete: into its container, and so on up a run of closings.
        while True:
            if not stack:
                root = value
                want = "end"
                break
            parent = stack[-1]
            if type(parent) is list:
                parent.append(value)
                want = ",]"
            else:
                parent[keys[-1]] = value
                want = ",}"
            closing = _CLOSING.match(data, pos)
            if closing is None:
                break
            pos = closing.end()
            if closing.group(1) != (b"]" if want == ",]" else b"}"):
                raise ValueError("a closing bracket that does not match")
            value = stack.pop()
            keys.pop()


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8")
    if "\\" not in text:
        return text
    text = _UNESCAPE.sub(_unescape, text)
    if _SURROGATE.search(text) is not None:
        # A pair of escapes is one character to JavaScript; a lone one stays itself.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return text


def _unescape(found: re.Match[str]) -> str:
    code = found.group(1)
    return chr(int(code[1:], 16)) if len(code) == 5 else _UNESCAPED[code]


def _number(text: bytes, fraction: bytes | None) -> int | float:
    """An integer as orjson reads it (a double past 64 bits), -0 as -0.0, else a double."""
    if fraction is None:
        if text == b"-0":
            return -0.0
        whole = int(text)
        if _INT_RANGE[0] <= whole <= _INT_RANGE[1]:
            return whole
    return float(text)  # past the double range: an infinity, as JavaScript reads it


def compact(value: Any) -> bytes:
    """Compact JSON for `value`: orjson's bytes, or `dumps`' where JavaScript's differ.

    orjson refuses lone surrogates and nesting past 255 levels, and writes -0.0 as
    `-0.0`; those records are written as JSON.stringify writes them. (orjson writes the
    infinities as `null`, as JSON.stringify does.)
    """
    try:
        data = orjson.dumps(value)
    except TypeError:
        return dumps(value)
    return dumps(value) if b"-0.0" in data else data


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


def _encode(root: Any, out: Any) -> None:
    # An explicit stack, not recursion: values nest as deep as a record allows.
    frames: list[list[Any]] = []  # [items iterator, closing text, first?, object?]
    value = root
    while True:
        leaf = _scalar(value)
        if leaf is not None:
            out(leaf)
        else:
            if isinstance(value, dict):
                entries: list[Any] = _ordered(value)
                is_object = True
            else:
                entries = list(value)
                is_object = False
            if not entries:
                out("{}" if is_object else "[]")
            else:
                out("{" if is_object else "[")
                frames.append([iter(entries), "}" if is_object else "]", True, is_object])
        while frames:
            frame = frames[-1]
            item: Any = next(frame[0], _DONE)
            if item is _DONE:
                out(frame[1])
                frames.pop()
                continue
            if frame[2]:
                frame[2] = False
            else:
                out(",")
            if frame[3]:
                out(_string(item[0]))
                out(":")
                value = item[1]
            else:
                value = item
            break
        else:
            return


def _scalar(value: Any) -> str | None:
    """The text of a value that is not an object or array; None for those."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is dict or kind is list or kind is tuple:
        return None
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return str(value) if -_MAX_SAFE <= value <= _MAX_SAFE else _big_int(value)
    if kind is float:
        return number(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _scalar(int(value))
    if isinstance(value, float):
        return number(float(value))
    if isinstance(value, str):
        return _string(str(value))
    if isinstance(value, (dict, list, tuple)):
        return None
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
