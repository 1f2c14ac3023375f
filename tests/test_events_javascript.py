"""The reading path reads as JavaScript's JSON.parse does, in every layout.

Lone surrogates, numbers past the double range, nesting past orjson's 1,024 levels,
`-0` and own `__proto__` keys; ordinary records stay on orjson's fast path, and what
JavaScript refuses too is still a bad record with orjson's reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.events.records import ProtoKeys, mark_proto_keys
from cmdai_cli.js_json import _parse, compact, dumps, loads
from cmdai_cli.mapping.destination import map_destination
from cmdai_cli.mapping.kit import assign_copy
from cmdai_cli.mapping.webhook import WebhookMapping, apply_mapping, map_webhook, parse_mapping

from .test_events_reader import read_all, write

HARD = (
    b'{"type":"track","event":"cut \\ud83d","properties":{"k\\udc00":"\\uDFFF\\uD800",'
    b'"big":1e400,"small":-1e400,"zero":-0,"pair":"\\ud83d\\ude00"}}'
)


def test_loads_reads_what_json_parse_reads() -> None:
    value = loads(HARD)
    assert value["event"] == "cut \ud83d"
    properties = value["properties"]
    assert properties["k\udc00"] == "\udfff\ud800"
    assert properties["big"] == math.inf and properties["small"] == -math.inf
    assert math.copysign(1, properties["zero"]) == -1.0  # -0, as JavaScript holds it
    assert properties["pair"] == "\U0001f600"  # a pair of escapes is one character
    # Written back as JSON.stringify writes it.
    assert dumps(value) == (
        b'{"type":"track","event":"cut \\ud83d","properties":{"k\\udc00":"\\udfff\\ud800",'
        b'"big":null,"small":null,"zero":0,"pair":"\xf0\x9f\x98\x80"}}'
    )
    assert compact(value) == dumps(value)


@pytest.mark.parametrize(
    "text",
    [b"[1,]", b'{"a":1,}', b"[NaN]", b"[Infinity]", b'["\\ud800\x01"]', b"01", b'"\\ud800" x'],
)
def test_loads_refuses_what_javascript_refuses(text: bytes) -> None:
    with pytest.raises(ValueError):
        loads(text)


def test_deep_nesting_is_read_with_bounded_stack() -> None:
    deep = b'{"a":' + b'[{"k":' * 20_000 + b'"\\ud800"' + b"}]" * 20_000 + b"}"
    # 40,001 levels: far past Python's recursion, in an explicit stack.
    assert dumps(loads(deep)) == deep
    assert compact(loads(b"[" * 100_000 + b"]" * 100_000)) == b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "text",
    [
        b"[1,]",
        b"{]",
        b"[}",
        b'{"a":}',
        b"[1 2]",
        b'{"a":1 "b":2}',
        b"[[1]",
        b'{"a":[}]',
        b'{"a":1}}',
        b"[,1]",
        b"",
        b'"\\ud800',
    ],
)
def test_the_deep_parser_refuses_what_javascript_refuses(text: bytes) -> None:
    with pytest.raises((ValueError, IndexError)):
        _parse(text)


@pytest.mark.parametrize(
    "text",
    [
        b' {"a" : [ 1 , {"b":null,"c":true}, false ] , "e": {}, "f": [], "g": [[]]} ',
        b'[[],[[]],{},{"":{"x":[-0,1e400,"\\ud800"]}}]',
        b'"x"',
        b"-0",
    ],
)
def test_the_deep_parser_agrees_with_the_fast_one(text: bytes) -> None:
    assert dumps(_parse(text)) == dumps(loads(text))


def test_records_javascript_reads_are_events_in_every_layout(tmp_path: Path) -> None:
    deep = b'{"type":"track","event":"d","properties":{"d":' + b"[" * 1500 + b"]" * 1500 + b"}}"
    ndjson = write(tmp_path, "a.ndjson", HARD + b"\n" + deep + b"\n" + b"[1,]\n")
    array = write(tmp_path, "b.json", b"[\n" + HARD + b",\n" + deep + b"\n]")
    pretty = write(tmp_path, "c.json", HARD.replace(b",", b",\n  ") + b"\n" + deep)
    for spec in (ndjson, array, pretty):
        events, bad = read_all([spec])
        assert [value["event"] for _, _, value in events] == ["cut \ud83d", "d"], spec
        assert events[0][2]["properties"]["big"] == math.inf
    events, bad = read_all([ndjson])
    assert [(b.line, b.reason) for b in bad] == [
        (3, "not valid JSON (trailing comma is not allowed)")
    ]


def test_a_proto_key_is_found_from_the_bytes_without_walking_ordinary_records(
    tmp_path: Path,
) -> None:
    plain = {"type": "identify", "traits": {"proto": "__proto_"}}
    assert type(mark_proto_keys(plain, b'{"proto":"__proto_"}')) is dict
    # A record without the bytes is never walked, whatever the value holds.
    assert type(mark_proto_keys({"__proto__": 1}, b"{}")) is dict
    lines = [
        b'{"type":"identify","userId":"u","traits":{"a":1,"__proto__":{"x":1}}}',
        b'{"type":"identify","userId":"u","traits":{"b":[{"\\u005f_proto__":null}]}}',
        b'{"type":"identify","userId":"u","traits":{"c":"__proto__ is only a value"}}',
        b'{"type":"identify","userId":"u","traits":{"d":"\\u00fc"}}',
    ]
    events, _ = read_all([write(tmp_path, "p.ndjson", b"\n".join(lines))])
    kinds = [type(value) for _, _, value in events]
    assert kinds == [ProtoKeys, ProtoKeys, dict, dict]


def test_mapped_values_lose_own_proto_keys_at_every_depth() -> None:
    event: Any = ProtoKeys(
        loads(
            b'{"type":"identify","userId":{"__proto__":1,"id":"u"},"__proto__":{"t":1},'
            b'"traits":{"a":[{"__proto__":null,"k":1}],"__proto__":{"evil":true},"z":2},'
            b'"context":{"CommandBar":{"hmac":{"__proto__":"x"}}}}'
        )
    )
    assert event["traits"]["__proto__"] == {"evil": True}  # kept as read
    record, _ = map_destination(event, deploy=True)
    assert record is not None
    assert dumps(record["args"]) == b'[{"id":"u"},{"a":[{"k":1}],"z":2},{"hmac":{}}]'
    body = apply_mapping(event)
    assert dumps(body)[:60] == b'{"type":"identify","userId":{"id":"u"},"traits":{"a":[{"k":1'
    event["userId"] = "u"
    webhook, _ = map_webhook(event)
    properties = {"a": [{"k": 1}], "z": 2}
    assert webhook == {"userId": "u", "properties": properties, "ignored": None}
    # A body field named __proto__ sets the body's prototype in mapping-kit: no field.
    mapping: WebhookMapping = parse_mapping({"__proto__": "$.traits", "userId": "$.userId"})
    assert apply_mapping({"userId": "u", "traits": {}}, mapping) == {"userId": "u"}
    assert assign_copy([{"__proto__": 1, "a": {"__proto__": 2}}]) == [{"a": {}}]


def test_an_infinity_reaches_command_ai_as_null() -> None:
    record, problem = map_webhook(loads(b'{"userId":1e400,"traits":{"a":1}}'))
    assert problem is None and record is not None and record["ignored"] == "no userId"
    record, problem = map_webhook(loads(b'{"userId":"u","traits":-1e400}'))
    assert problem is None and record == {"userId": "u", "properties": {}, "ignored": None}


def test_commands_show_lone_surrogates_as_escapes(cli: Any, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "h.ndjson",
        b'{"type":"track","event":"E\\ud800","userId":"u\\udc00","properties":{"n":1e400}}\n',
    )
    result = cli("validate", path)
    assert result.exit_code == 1 and "#0 E\\ud800: unplanned event" in result.stdout
    result = cli("validate", "--json", path)
    assert b'"by_event":{"E\\ud800":' in result.stdout_bytes
    result = cli("map-payload", "--format", "table", "--target", "destination", path)
    assert result.exit_code == 0 and '["E\\ud800",{"n":null}]' in result.stdout
    result = cli("map-payload", "--format", "table", path)
    assert result.exit_code == 0 and "u\\udc00" in result.stdout
    result = cli("map-payload", "--format", "json", path)
    assert loads(result.stdout_bytes)[0]["userId"] == "u\udc00"
