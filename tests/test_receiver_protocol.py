"""The receiver answers as Segment does: paths, bodies, write keys, limits and flags."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.segment.messages import MESSAGE_TYPES

from .receiver_http import KEY, basic, msg, post


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_single_endpoints_take_their_type_from_the_path(rx: Receiver, kind: str) -> None:
    body = msg(kind)
    body["type"] = "something-else"
    status, answer = post(rx, f"/v1/{kind}", body)
    assert (status, answer) == (200, {"success": True})
    [received] = rx.messages()
    assert received.message["type"] == kind
    assert received.message["messageId"] == body["messageId"]
    assert received.path == f"/v1/{kind}"


def test_batch_merges_context_and_sent_at_and_strips_the_write_key(rx: Receiver) -> None:
    items = [msg(context={"ip": "1.2.3.4"}, writeKey=KEY), msg("identify", traits={"a": 1})]
    body: dict[str, Any] = {"batch": items, "writeKey": KEY, "sentAt": "2024-05-01T00:00:00Z"}
    body["context"] = {"ip": "9.9.9.9", "app": {"name": "x"}}
    assert post(rx, "/v1/batch", body)[0] == 200
    first, second = (r.message for r in rx.messages())
    assert first["context"] == {"ip": "1.2.3.4", "app": {"name": "x"}}
    assert second["context"] == {"ip": "9.9.9.9", "app": {"name": "x"}}
    assert second["traits"] == {"a": 1}
    assert first["sentAt"] == "2024-05-01T00:00:00Z"
    assert all("writeKey" not in r.message and "receivedAt" in r.message for r in rx.messages())


def test_a_wrong_write_key_is_accepted_and_flagged_as_segment_would() -> None:
    with Receiver(ListenOptions(write_key=KEY)) as rx:
        assert post(rx, "/v1/track", msg(), headers=basic(KEY))[0] == 200
        assert post(rx, "/v1/track", msg(), headers=basic("wrong-key-123"))[0] == 200
        assert post(rx, "/v1/batch", {"batch": [msg()]})[0] == 200
        assert post(rx, "/v1/t", {**msg(), "writeKey": KEY})[0] == 200
        flags = [received.flags for received in rx.messages()]
        assert flags == [(), ("wrong write key",), ("wrong write key",), ()]
        assert rx.stats.rejected == {} and rx.stats.flagged == 2


def test_write_key_by_basic_auth_or_body_and_401_otherwise_when_asked() -> None:
    # The contract changed on purpose: the 401 is now what `reject_wrong_key` asks for.
    with Receiver(ListenOptions(write_key=KEY, reject_wrong_key=True)) as rx:
        assert post(rx, "/v1/track", msg(), headers=basic(KEY))[0] == 200
        assert post(rx, "/v1/track", {**msg(), "writeKey": KEY})[0] == 200
        status, answer = post(rx, "/v1/track", msg(), headers=basic("wrong-key-123"))
        assert status == 401 and answer["success"] is False
        assert post(rx, "/v1/batch", {"batch": [msg()]})[0] == 401
        assert post(rx, "/v1/track", msg(), headers={"Authorization": "Basic !!!"})[0] == 401
        assert len(rx.messages()) == 2
        assert rx.stats.rejected == {401: 3}


def test_gzip_bodies(rx: Receiver) -> None:
    raw = gzip.compress(json.dumps({"batch": [msg(), msg()]}).encode())
    status, _ = post(rx, "/v1/batch", None, raw=raw, headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert len(rx.messages()) == 2


@pytest.mark.parametrize(
    ("raw", "headers", "why"),
    [
        (b"{not json", {}, "invalid JSON"),
        (b"[1, 2]", {}, "object"),
        (b'"text"', {}, "object"),
        (b'{"batch": {"type": "track"}}', {}, "list"),
        (b'{"batch": [1, {"type": "track"}]}', {}, "not an object"),
        (gzip.compress(b'{"batch": []}' * 50)[:-12], {"Content-Encoding": "gzip"}, "gzip"),
        (b"garbage", {"Content-Encoding": "gzip"}, "gzip"),
        (b"{}", {"Content-Encoding": "br"}, "Content-Encoding"),
    ],
)
def test_bad_bodies_get_400_and_the_server_keeps_serving(
    rx: Receiver, raw: bytes, headers: dict[str, str], why: str
) -> None:
    status, answer = post(rx, "/v1/batch", None, raw=raw, headers=headers)
    assert status == 400
    assert why in answer["message"]
    assert post(rx, "/v1/track", msg())[0] == 200


def test_message_over_32_kb_is_refused(rx: Receiver) -> None:
    big = msg(properties={"blob": "x" * (32 * 1024)})
    assert post(rx, "/v1/batch", {"batch": [msg(), big]})[0] == 400
    assert post(rx, "/v1/track", big)[0] == 400
    just_under = msg(properties={"blob": "x" * (31 * 1024)})
    assert post(rx, "/v1/track", just_under)[0] == 200
    assert len(rx.messages()) == 1


def test_batch_over_500_kb_or_2500_messages_is_refused(rx: Receiver) -> None:
    items = [msg(properties={"blob": "x" * 20_000}) for _ in range(27)]
    status, answer = post(rx, "/v1/batch", {"batch": items})
    assert status == 400 and "500 KB" in answer["message"]
    small = [{"type": "track", "userId": "u", "event": "e"} for _ in range(2501)]
    status, answer = post(rx, "/v1/batch", {"batch": small})
    assert status == 400 and "2500" in answer["message"]
    assert post(rx, "/v1/batch", {"batch": small[:2500]})[0] == 200
    assert len(rx.messages()) == 2500


def test_gzip_bomb_is_refused_without_inflating_it(rx: Receiver) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 100_000
    status, answer = post(rx, "/v1/batch", None, raw=bomb, headers={"Content-Encoding": "gzip"})
    assert status == 400 and "500 KB" in answer["message"]


def test_accepts_and_flags_what_segment_would_drop(rx: Receiver) -> None:
    dup = str(uuid.uuid4())
    items = [
        {"type": "track", "event": "x"},
        {"type": "track", "userId": "u"},
        {"type": "group", "userId": "u"},
        {"type": "alias", "userId": "u"},
        {"type": "banana", "userId": "u"},
        msg(messageId=dup),
        msg(messageId=dup),
        msg(messageId="m" * 101),
    ]
    assert post(rx, "/v1/batch", {"batch": items}) == (200, {"success": True})
    flags = [r.flags for r in rx.messages()]
    assert flags == [
        ("no userId or anonymousId",),
        ("track without event",),
        ("no groupId",),
        ("no previousId",),
        ("unknown type",),
        (),
        ("duplicate messageId",),
        ("messageId over 100 characters",),
    ]
    assert rx.stats.flagged == 7


def test_parse_encoded_answers_without_a_server() -> None:
    from cmdai_cli.receiver.protocol import Rejected, basic_auth_key, decode_body, parse_encoded

    body = json.dumps({"batch": [msg(writeKey=KEY)], "writeKey": KEY}).encode()
    [(message, raw, flags)] = parse_encoded("/v1/batch", body, KEY, None, None)
    assert "writeKey" not in message and message["type"] == "track" and flags == ()
    assert json.loads(raw) == message
    [(flagged, _, flags)] = parse_encoded("/v1/batch", body, "another-key-123", None, None)
    assert flagged["type"] == "track" and flags == ("wrong write key",)
    with pytest.raises(Rejected) as refused:
        parse_encoded("/v1/batch", body, "another-key-123", None, None, reject_wrong_key=True)
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    assert basic_auth_key(basic(KEY)["Authorization"]) == KEY
    assert basic_auth_key("Bearer x") is None
    assert decode_body(gzip.compress(body), "gzip") == body
    with pytest.raises(Rejected, match="Content-Encoding"):
        decode_body(body, "br")


@pytest.mark.parametrize("kind", [["track"], {"name": "track"}, 3])
def test_a_type_that_is_not_a_string_is_flagged_and_kept(rx: Receiver, kind: Any) -> None:
    body = {"batch": [msg(messageId="odd-type"), {**msg(messageId="odd"), "type": kind}]}
    assert post(rx, "/v1/batch", body)[0] == 200
    received = rx.wait_for(2, timeout=5)
    odd = next(r for r in received if r.message["messageId"] == "odd")
    assert "unknown type" in " ".join(odd.flags)
    assert rx.stats.dropped_connections == 0
