"""Text from outside made safe to show on a terminal: `printable(value)`.

Event names, keys, paths and server answers can hold escape sequences (`ESC[2J` clears
the screen, `ESC]0;...BEL` retitles the window), bidirectional overrides, or lone
surrogates that no terminal encoding can write. Every such character is shown as its
Python escape (`\\x1b`, `\\u202e`, `\\ud800`), so what is shown is what was received,
one line, and nothing acts on the terminal.
"""

from __future__ import annotations

from typing import Any

_SHOWN = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char.isprintable() and not 0xD800 <= ord(char) <= 0xDFFF:
        return char
    shown = _SHOWN.get(char)
    if shown is not None:
        return shown
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(value: Any) -> str:
    """`value` as text with every character a terminal would act on escaped."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(map(_escape, text))
