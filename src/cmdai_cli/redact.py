"""Masking of secrets: the one place that decides how much of a secret may be shown.

`mask` shows a short prefix so a user can tell two keys apart; `scrub` removes every
secret this process has seen from a text before it is printed or logged.
"""

from __future__ import annotations

import logging

_PREFIX = 4
_known: set[str] = set()


def mask(secret: str | None) -> str | None:
    """A secret as it may be shown: at most 4 characters, and fewer of a short one."""
    if secret is None:
        return None
    if secret == "":
        return ""
    shown = min(_PREFIX, len(secret) // 4)
    return secret[:shown] + "****"


def register(secret: str | None) -> None:
    """Remember a secret so that `scrub` removes it from any later text."""
    # Very short values would scrub ordinary words; they are masked where shown instead.
    if secret and len(secret) >= 6:
        _known.add(secret)


def scrub(text: str) -> str:
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, mask(secret) or "")
    return text


class ScrubFilter(logging.Filter):
    """A logging filter that masks every registered secret in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True
