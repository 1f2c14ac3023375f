"""`$.` paths: parsing and formatting."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmdai_cli.mapping.paths import format_path, parse_path


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("$.", ()),
        ("$.userId", ("userId",)),
        ("$.context.traits.email", ("context", "traits", "email")),
        ("$.items[0].sku", ("items", 0, "sku")),
        ('$.traits["first name"]', ("traits", "first name")),
        ("$.traits['a.b']", ("traits", "a.b")),
        ('$.["user_property.x"]', ("user_property.x",)),
    ],
)
def test_parse_path(path: str, keys: tuple[Any, ...]) -> None:
    assert parse_path(path) == keys


@given(st.lists(st.one_of(st.text(min_size=1), st.integers(0, 99)), max_size=5))
def test_format_path_round_trips(keys: list[Any]) -> None:
    assert parse_path(format_path(keys)) == tuple(keys)
