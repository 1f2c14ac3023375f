"""The trigger of an Actions subscription: the subset of FQL that Segment's subscriptions take.

Segment parses a subscription's trigger with its destination-subscriptions package
(segmentio/action-destinations, packages/destination-subscriptions/src/parse-fql.ts),
which understands only part of FQL, and stores whatever it is given. So a trigger is
checked here before it is stored or sent:

    condition  = field op value | ["!"] ("contains" | "match") "(" field "," string ")"
    group      = condition | "(" expression ")"
    expression = group {("and" | "or") group}     one of them per level: use parentheses
    field      = type | event | name | userId | properties.<path> | traits.<path>
    op         = "=" | "!=" | "<" | "<=" | ">" | ">="
    value      = "string" | number | true | false | null   (null: with = or != only)

`type` is compared with one of Segment's message types; `match` patterns start or end
with `*` (starts-with, ends-with), the only two forms Segment reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cmdai_cli.errors import UsageError
from cmdai_cli.segment.messages import MESSAGE_TYPES

__all__ = ["check_trigger"]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<ident>[A-Za-z_$][\w$-]*(?:\.[A-Za-z_$0-9][\w$-]*)*)
  | (?P<op>!=|<=|>=|=|<|>|!)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_FIELDS = ("type", "event", "name", "userId")
_PATH_ROOTS = ("properties", "traits")
_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
_FUNCTIONS = ("contains", "match")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    at: int  # 1-based character position, for messages


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    # -- cursor -------------------------------------------------------------

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise self.error(f"{expected} is missing at the end")
        self.pos += 1
        return token

    def error(self, reason: str, token: _Token | None = None) -> UsageError:
        where = f" (at character {token.at})" if token is not None else ""
        return UsageError(
            f"--trigger {self.text!r} is not a trigger Segment accepts: {reason}{where}",
            hint='for example: type = "identify", or type = "track" and event = "Opened"',
        )

    # -- grammar ------------------------------------------------------------

    def expression(self) -> None:
        self.group()
        joiner: str | None = None
        while (token := self.peek()) is not None and token.kind == "ident":
            if token.text not in ("and", "or"):
                raise self.error(f"expected 'and' or 'or', found {token.text!r}", token)
            if joiner is not None and token.text != joiner:
                raise self.error("'and' and 'or' are mixed: group them with parentheses", token)
            joiner = token.text
            self.pos += 1
            self.group()

    def group(self) -> None:
        token = self.take("a condition")
        if token.text == "(":
            self.expression()
            closing = self.take("')'")
            if closing.text != ")":
                raise self.error(f"expected ')', found {closing.text!r}", closing)
            return
        if token.text == "!" or token.text in _FUNCTIONS:
            name = self.take("a function") if token.text == "!" else token
            if name.text not in _FUNCTIONS:
                raise self.error("'!' goes only before contains(...) or match(...)", token)
            self.function(name)
            return
        self.comparison(token)

    def field(self, token: _Token) -> str:
        if token.kind != "ident":
            raise self.error(f"expected a field, found {token.text!r}", token)
        root, _, rest = token.text.partition(".")
        if (root in _FIELDS and not rest) or (root in _PATH_ROOTS and rest):
            return token.text
        raise self.error(
            f"{token.text!r} is not a field a trigger can test (type, event, name, userId, "
            "properties.<name>, traits.<name>)",
            token,
        )

    def comparison(self, first: _Token) -> None:
        field = self.field(first)
        op = self.take("an operator")
        if op.text not in _COMPARISONS:
            raise self.error(f"expected an operator (= != < <= > >=), found {op.text!r}", op)
        value = self.take("a value")
        if value.kind == "ident" and value.text in ("true", "false", "null"):
            if value.text == "null" and (op.text not in ("=", "!=") or field in ("type", "event")):
                raise self.error(f"{field} {op.text} null is not a test Segment reads", value)
        elif value.kind not in ("string", "number"):
            raise self.error(
                f'expected a value (a "string" or a number), found {value.text!r}', value
            )
        if field == "type" and value.kind == "string":
            kind = value.text[1:-1]
            if kind not in MESSAGE_TYPES:
                raise self.error(
                    f"type {kind!r} is not one of Segment's types ({', '.join(MESSAGE_TYPES)})",
                    value,
                )

    def function(self, name: _Token) -> None:
        token = self.take("'('")
        if token.text != "(":
            raise self.error(f"expected '(' after {name.text}", token)
        self.field(self.take("a field"))
        comma = self.take("','")
        if comma.text != ",":
            raise self.error(f"expected ',' in {name.text}(...)", comma)
        pattern = self.take("a string")
        if pattern.kind != "string":
            raise self.error(f'{name.text}(...) takes a "string"', pattern)
        if name.text == "match" and not (
            pattern.text.startswith('"*') or pattern.text.endswith('*"')
        ):
            raise self.error('match(...) patterns start or end with * ("Order*", "*ed")', pattern)
        closing = self.take("')'")
        if closing.text != ")":
            raise self.error(f"expected ')' after {name.text}(...)", closing)


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    at = 0
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None:
            char = text[at]
            hint = " (strings take double quotes)" if char == "'" else ""
            raise UsageError(
                f"--trigger {text!r} is not a trigger Segment accepts: unexpected {char!r} "
                f"(at character {at + 1}){hint}"
            )
        kind = found.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, found.group(), at + 1))
        at = found.end()
    return tokens


def check_trigger(text: str) -> str:
    """`text` stripped, when it is a trigger Segment's subscriptions read; else UsageError."""
    stripped = text.strip()
    if not stripped:
        raise UsageError('the trigger is empty; give an FQL condition such as type = "track"')
    parser = _Parser(stripped)
    parser.expression()
    extra = parser.peek()
    if extra is not None:
        raise parser.error(f"unexpected {extra.text!r}", extra)
    return stripped
