"""cmdai against the CommandBar destination's own code and mapping-kit, run in Node.

A few thousand generated events, each holding values JavaScript reads its own way (lone
surrogates, numbers past the double range, nesting past 1,024 levels, `__proto__` keys,
`-0`) or none: `tests/node/commandbar.cjs` runs the destination from
`@segment/browser-destinations` through `@segment/browser-destination-runtime` and
mapping-kit's `transform` from `@segment/actions-core` (pinned in tests/node/package.json)
with `window.CommandBar` recorded. Every call `map-payload --target destination` shows
must be the call the real code makes, with either `deploy` setting; every body `replay
--to webhook` posts must be the bytes of `JSON.stringify` of the real transform's output;
and `map-payload --target webhook` must record what Command AI records from that body.
Node runs once for the whole batch.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.js_json import dumps, loads
from cmdai_cli.mapping.webhook import record_properties

from .node_env import NODE_DIR, node_or_skip

EVENTS = 3000
PACKAGES = (
    "@segment/browser-destinations",
    "@segment/actions-core",
    "@segment/browser-destination-runtime",
)


class Raw(str):
    """JSON text written as it is (a number JavaScript reads its own way, deep nesting)."""


SURROGATES = ["\ud800", "a\udc00b", "\udfff\ud800", "cut \ud83d", "\ude00 tail", "ok \ud83d\ude00"]
BEYOND_DOUBLE = [Raw("1e400"), Raw("-1e400"), Raw("1E999"), Raw("-2.5e308")]
NEGATIVE_ZERO = [Raw("-0"), Raw("-0.0"), Raw("-0e0"), Raw("-0E+5")]
PROTO_VALUES: list[Any] = [
    {"x": 1, "traits": {"plan": "evil"}},
    None,
    "a string",
    7,
    [1, 2],
    True,
    {},
]
CLASSES = ("ordinary", "surrogate", "beyond_double", "deep", "proto", "negative_zero")


def encode(value: Any) -> str:
    """JSON text; `Raw` as it is, strings with surrogates as escapes."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=bool(re.search("[\ud800-\udfff]", value)))
    if isinstance(value, dict):
        return "{" + ",".join(f"{_key(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


def _key(key: str) -> str:
    return str(key) if isinstance(key, Raw) else encode(key)


def proto_key(rng: random.Random) -> str:
    # JSON.parse reads an escaped spelling as the same own `__proto__` key.
    return Raw('"\\u005f_proto__"') if rng.random() < 0.2 else "__proto__"


def deep(rng: random.Random, leaf: Any) -> Raw:
    depth = rng.randint(1025, 1500)  # past orjson's 1,024, within what Node's stack holds
    shape = rng.choice(("array", "object", "mixed"))
    inner = encode(leaf)
    if shape == "array":
        return Raw("[" * depth + inner + "]" * depth)
    if shape == "object":
        return Raw('{"a":' * depth + inner + "}" * depth)
    half = depth // 2
    return Raw('[{"k":' * half + inner + "}]" * half)


def hard(rng: random.Random, kind: str) -> Any:
    """A value of one class."""
    if kind == "surrogate":
        return rng.choice(SURROGATES)
    if kind == "beyond_double":
        return rng.choice(BEYOND_DOUBLE)
    if kind == "negative_zero":
        return rng.choice(NEGATIVE_ZERO)
    if kind == "deep":
        return deep(rng, rng.choice(["x", 1, hard(rng, rng.choice(CLASSES[1:3] + CLASSES[5:]))]))
    if kind == "proto":
        inner: dict[Any, Any] = {"before": 1, proto_key(rng): rng.choice(PROTO_VALUES), "after": 2}
        return rng.choice([inner, [inner, {"b": inner}], {"nested": inner}])
    return rng.choice(["plain", "ü ß", 42, 1.5, True, False, None, [1, "two"], {"k": "v"}])


def make_event(rng: random.Random, index: int) -> str:
    """An event's line, under Segment's 32 KB (several deep values may not fit: redrawn)."""
    while True:
        text = _draw_event(rng, index)
        if len(text.encode("utf-8", "surrogatepass")) < 30_000:
            return text


def _draw_event(rng: random.Random, index: int) -> str:
    kind = CLASSES[index % len(CLASSES)]
    extra = rng.choice(CLASSES) if rng.random() < 0.3 else kind
    event_type = rng.choice(["identify", "identify", "track", "track", "page", "group", None])
    event: dict[Any, Any] = {"messageId": f"m-{index:06d}"}
    if event_type is not None:
        event["type"] = event_type
    if rng.random() < 0.85:
        event["userId"] = hard(rng, kind) if rng.random() < 0.15 else f"user-{index}"
    traits: dict[Any, Any] = {"plan": rng.choice(["free", "pro"]), "seats": rng.randrange(50)}
    properties: dict[Any, Any] = {"type": "opened", "session": index}
    for _ in range(rng.randint(1, 3)):
        target = rng.choice([traits, properties])
        target[f"k{rng.randrange(9)}"] = hard(rng, rng.choice([kind, extra]))
    if kind == "surrogate" and rng.random() < 0.3:
        traits[rng.choice(SURROGATES)] = "a key with a lone surrogate"
    if kind == "proto" and rng.random() < 0.3:
        event[proto_key(rng)] = rng.choice(PROTO_VALUES)
    if event_type in ("identify", "group") or rng.random() < 0.1:
        event["traits"] = hard(rng, kind) if rng.random() < 0.08 else traits
    if event_type == "track" or rng.random() < 0.1:
        event["event"] = hard(rng, kind) if rng.random() < 0.1 else "Opened"
        event["properties"] = hard(rng, extra) if rng.random() < 0.08 else properties
    if rng.random() < 0.3:
        bar: dict[Any, Any] = {"hmac": hard(rng, kind), "formFactor": hard(rng, extra)}
        if kind == "proto" and rng.random() < 0.5:
            bar[proto_key(rng)] = {"hmac": "inherited"}
        event["context"] = {"CommandBar": bar, "ip": "10.0.0.1"}
    return encode(event)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """The events file and, per event, what the real code does with it."""
    node = node_or_skip(*PACKAGES)
    folder = tmp_path_factory.mktemp("differential")
    rng = random.Random(22)
    source = folder / "events.ndjson"
    source.write_bytes("".join(make_event(rng, i) + "\n" for i in range(EVENTS)).encode("utf-8"))
    answers = folder / "node.ndjson"
    subprocess.run(
        [node, str(NODE_DIR / "commandbar.cjs"), str(source), str(answers)],
        check=True,
        timeout=60,
        cwd=NODE_DIR,
    )
    real = [json.loads(line) for line in answers.read_text("utf-8").splitlines()]
    assert len(real) == EVENTS
    failed = [i for i, got in enumerate(real) if any(v.startswith("error") for v in got.values())]
    assert failed == [], [real[i] for i in failed[:3]]
    return source, real


def records(stdout: bytes) -> dict[int, tuple[bytes, Any]]:
    """Each output line, by its index, with its value as JSON.parse reads it."""
    found = {}
    for line in stdout.splitlines():
        value = loads(line)
        found[value["index"]] = (line, value)
    return found


ACTIONS = {"boot": "identifyUser", "addMetadataBatch": "identifyUser", "trackEvent": "trackEvent"}


@pytest.mark.parametrize("deploy", [True, False])
def test_destination_calls_are_the_real_codes(
    cli: Any, batch: tuple[Path, list[dict[str, str]]], deploy: bool
) -> None:
    source, real = batch
    flag = "--deploy" if deploy else "--no-deploy"
    result = cli("map-payload", str(source), "--target", "destination", flag, "--format", "ndjson")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout_bytes.splitlines()
    assert len(lines) == EVENTS
    for index, answer in enumerate(real):
        calls = answer["deploy" if deploy else "noDeploy"]
        if calls == "[]":
            record = loads(lines[index])
            assert record["index"] == index and record["call"] is None, (index, record)
            continue
        # One call, `[{"call":NAME,"args":ARGS}]` as JSON.stringify wrote it: cmdai's line
        # must hold the same call with the very same bytes for its arguments.
        one = re.fullmatch(r'\[\{"call":"(\w+)","args":(.*)\}\]', calls, re.DOTALL)
        assert one is not None, calls[:300]
        name, args = one.groups()
        expected = (
            f'{{"index":{index},"action":"{ACTIONS[name]}","call":"{name}","args":{args},'
            '"ignored":null}'
        )
        assert lines[index] == expected.encode("utf-8"), (index, calls[:300])


class _Hook(BaseHTTPRequestHandler):
    bodies: list[bytes]
    protocol_version = "HTTP/1.1"  # connections kept open, as Command AI's would be

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Hook", (_Hook,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


def _replay(cli: Any, source: Path, url: str, *extra: str) -> None:
    result = cli(
        "replay", str(source), "--to", "webhook", "--url", url, "--backoff", "0.01", *extra
    )
    assert result.exit_code == 0, result.stderr


def _event_index(data: bytes) -> int:
    found = re.search(rb'"messageId":"m-(\d{6})"', data)
    assert found is not None, data[:200]
    return int(found.group(1))


def test_replayed_webhook_bodies_are_json_stringify_of_the_real_transform(
    cli: Any,
    batch: tuple[Path, list[dict[str, str]]],
    hook: tuple[str, list[bytes]],
    tmp_path: Path,
) -> None:
    source, real = batch
    url, bodies = hook
    # One event a request, for the first few hundred (every class is among them)...
    few = tmp_path / "few.ndjson"
    few.write_bytes(b"".join(source.read_bytes().splitlines(keepends=True)[:300]))
    _replay(cli, few, url)
    assert sorted(_event_index(body) for body in bodies) == list(range(300))
    for body in bodies:
        assert body == real[_event_index(body)]["webhook"].encode("utf-8")
    # ...and every event in batches: a JSON array of those same bytes, in order.
    bodies.clear()
    _replay(cli, source, url, "--batch-size", "100")
    seen = []
    for body in bodies:
        # Only each event's own messageId spells `m-NNNNNN` (the generator's).
        indexes = [int(n) for n in re.findall(rb'"messageId":"m-(\d{6})"', body)]
        expected = ",".join(real[index]["webhook"] for index in indexes)
        assert body == ("[" + expected + "]").encode("utf-8"), indexes
        seen.extend(indexes)
    assert sorted(seen) == list(range(EVENTS))


def test_webhook_records_are_what_command_ai_records_from_the_real_body(
    cli: Any, batch: tuple[Path, list[dict[str, str]]]
) -> None:
    source, real = batch
    result = cli("map-payload", str(source), "--format", "ndjson", "--on-error", "skip")
    assert result.exit_code == 0, result.stderr
    shown = records(result.stdout_bytes)
    for index, answer in enumerate(real):
        expected, problem = record_properties(loads(answer["webhook"].encode("utf-8")))
        if expected is None:
            assert index not in shown, (index, problem)
            continue
        line, record = shown[index]
        assert line == dumps(record), index
        assert dumps({"index": index, **expected}) == line, index
