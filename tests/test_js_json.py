"""cmdai's webhook bodies are the bytes JavaScript's JSON.stringify writes.

The property test hands each generated document to Node (`JSON.parse` then
`JSON.stringify`, tests/node/stringify.mjs) and compares bytes.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdai_cli.js_json import dumps, number

from .node_env import NODE_DIR, node_or_skip


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (0, "0"),
        (1e16, "10000000000000000"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (1e-7, "1e-7"),
        (1.25e-7, "1.25e-7"),
        (0.000001, "0.000001"),
        (123.456, "123.456"),
        (-5e-324, "-5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (math.nan, "null"),
        (math.inf, "null"),
        (-math.inf, "null"),
    ],
)
def test_numbers_as_javascript_prints_them(value: float, text: str) -> None:
    assert number(value) == text
    assert dumps(value) == text.encode()


def test_integers_beyond_2_to_53_are_doubles() -> None:
    assert dumps(2**53) == b"9007199254740992"
    assert dumps(2**53 + 1) == b"9007199254740992"
    assert dumps(12345678901234567890) == b"12345678901234567000"
    assert dumps(-(10**21)) == b"-1e+21"
    assert dumps(10**400) == b"null"


def test_integer_like_keys_come_first_in_ascending_order() -> None:
    body = {"b": 1, "10": 2, "a": 3, "2": 4, "01": 5, "-1": 6, "4294967295": 7, "4294967294": 8}
    assert dumps(body) == (
        b'{"2":4,"10":2,"4294967294":8,"b":1,"a":3,"01":5,"-1":6,"4294967295":7}'
    )


def test_strings_escape_as_json_stringify_does() -> None:
    text = 'q"b\\s/\b\t\n\f\r\x00\x1f\x7f\u2028é😀\ud800'
    assert dumps(text) == (
        '"q\\"b\\\\s/\\b\\t\\n\\f\\r\\u0000\\u001f\x7f\u2028é😀\\ud800"'.encode()
    )


def test_a_surrogate_pair_is_one_character_and_a_lone_one_is_escaped() -> None:
    assert dumps("\ud800\udc00") == '"\U00010000"'.encode()
    assert dumps("\udc00\ud800") == b'"\\udc00\\ud800"'


def test_not_json_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        dumps({1: "x"})
    with pytest.raises(TypeError):
        dumps({"a": object()})


# ------------------------------------------------------------------ against Node

keys = st.one_of(
    st.text(max_size=6),
    st.integers(0, 2**33).map(str),
    st.sampled_from(["0", "01", "-1", "1.5", "4294967294", "4294967295", "1e3", " 1"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e21, 1e-7, 1e-6, -0.0, 2.0**53, 10**400, 5e-324]),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    # Lone surrogates and the characters JSON.stringify treats apart, more often than
    # random text has them.
    st.lists(st.sampled_from(["\ud800", "\udfff", "\u2028", "\x7f", "\x1f", '"', "é", "a"])).map(
        "".join
    ),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def node_stringify() -> Iterator[subprocess.Popen[bytes]]:
    node = node_or_skip()
    proc = subprocess.Popen(
        [node, str(NODE_DIR / "stringify.mjs")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def stringify_in_node(proc: subprocess.Popen[bytes], document: Any) -> bytes:
    assert proc.stdin is not None and proc.stdout is not None
    # Python's json.dumps is ASCII: lone surrogates and all travel as \\u escapes.
    proc.stdin.write(json.dumps(document).encode() + b"\n")
    proc.stdin.flush()
    return proc.stdout.readline().rstrip(b"\n")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_bytes_match_nodes_json_stringify(
    node_stringify: subprocess.Popen[bytes], document: Any
) -> None:
    assert dumps(document) == stringify_in_node(node_stringify, document)
