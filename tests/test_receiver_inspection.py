"""The inspection API beside the Tracking API, and the bounded store behind it."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.inspection import BadQuery, parse_query
from cmdai_cli.receiver.store import Kept, Query, stamp

from .receiver_http import KEY, basic, msg, post


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def call(rx: Receiver, method: str, path: str, **params: Any) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
    try:
        query = urlencode(params, doseq=True)
        conn.request(method, path + ("?" + query if query else ""))
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [entry["message"]["messageId"] for entry in found]


def send_mix(rx: Receiver) -> None:
    batch = [
        msg(messageId="t1", event="Opened", userId="u1"),
        msg(messageId="t2", event="Closed", userId="u2"),
        msg("identify", messageId="i1", userId="u1"),
        msg("page", messageId="p1", userId=None, anonymousId="anon-9"),
        msg(messageId="t3", event="Opened", userId=None),  # no identity: flagged
        msg(messageId="t1", event="Opened", userId="u3"),  # repeated id: flagged
    ]
    assert post(rx, "/v1/batch", {"batch": batch})[0] == 200


def test_messages_filters(rx: Receiver) -> None:
    send_mix(rx)
    status, everything = call(rx, "GET", "/cmdai/messages")
    assert status == 200
    assert ids(everything) == ["t1", "t2", "i1", "p1", "t3", "t1"]
    first = everything[0]
    assert set(first) == {"receivedAt", "path", "flags", "message"}
    assert first["path"] == "/v1/batch" and first["flags"] == []
    assert ids(call(rx, "GET", "/cmdai/messages", type="identify")[1]) == ["i1"]
    assert ids(call(rx, "GET", "/cmdai/messages", event="Opened")[1]) == ["t1", "t3", "t1"]
    either = call(rx, "GET", "/cmdai/messages", event=["Opened", "Closed"], userId="u2")[1]
    assert ids(either) == ["t2"]
    assert ids(call(rx, "GET", "/cmdai/messages", anonymousId="anon-9")[1]) == ["p1"]
    flagged = call(rx, "GET", "/cmdai/messages", flagged="true")[1]
    assert [entry["flags"] for entry in flagged] == [
        ["no userId or anonymousId"],
        ["duplicate messageId"],
    ]
    assert len(call(rx, "GET", "/cmdai/messages", flagged="false")[1]) == 4
    newest = call(rx, "GET", "/cmdai/messages", type="track", limit=2)[1]
    assert ids(newest) == ["t3", "t1"]
    assert call(rx, "GET", "/cmdai/messages", limit=0)[1] == []


def test_since_is_inclusive_and_read_as_a_time(rx: Receiver) -> None:
    send_mix(rx)
    at = call(rx, "GET", "/cmdai/messages")[1][0]["receivedAt"]
    assert len(call(rx, "GET", "/cmdai/messages", since=at)[1]) == 6
    # The same moment written with an offset, and as a time in another zone.
    assert len(call(rx, "GET", "/cmdai/messages", since=at[:-1] + "+00:00")[1]) == 6
    assert stamp("2024-05-01T14:34:56.789+02:00") == "2024-05-01T12:34:56.789Z"
    assert stamp("2024-05-01T12:34:56") == "2024-05-01T12:34:56.000Z"
    assert call(rx, "GET", "/cmdai/messages", since="2999-01-01T00:00:00Z")[1] == []


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("flagged=maybe", "flagged must be true or false"),
        ("since=yesterday", "since must be an ISO-8601 time"),
        ("limit=-1", "limit must be a whole number"),
        ("limit=ten", "limit must be a whole number"),
        ("user=u1", "unknown filter 'user'"),
    ],
)
def test_bad_filters_get_400(rx: Receiver, query: str, problem: str) -> None:
    with pytest.raises(BadQuery, match=problem):
        parse_query(query)
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
    conn.request("GET", "/cmdai/messages?" + query)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 400 and problem in body["message"]


def test_summary_counts_by_type_event_flag_and_rejections() -> None:
    with Receiver(ListenOptions(write_key=KEY, reject_wrong_key=True)) as rx:
        send = {"batch": [msg(event="Opened"), msg(event="Opened"), msg("identify")]}
        assert post(rx, "/v1/batch", send, headers=basic(KEY))[0] == 200
        assert post(rx, "/v1/track", {"event": "Closed"}, headers=basic(KEY))[0] == 200
        assert post(rx, "/v1/batch", send, headers=basic("wrong-key-123"))[0] == 401
        assert post(rx, "/v1/batch", None, raw=b"{nope", headers=basic(KEY))[0] == 400
        status, summary = call(rx, "GET", "/cmdai/summary")
    assert status == 200
    assert summary == {
        "received": 4,
        "kept": 4,
        "keep": 10_000,
        "droppedByKeep": 0,
        "flagged": 1,
        "byType": {"identify": 1, "track": 3},
        "byEvent": {"Closed": 1, "Opened": 2},
        "byFlag": {"no userId or anonymousId": 1},
        "rejected": {"400": 1, "401": 1},
        "since": None,
    }


def test_reset_forgets_messages_counts_and_ids_but_not_the_out_file(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    with Receiver(ListenOptions(out=out)) as rx:
        post(rx, "/v1/batch", {"batch": [msg(messageId="a"), msg(messageId="b")]})
        status, body = call(rx, "POST", "/cmdai/reset")
        assert (status, body) == (200, {"success": True, "forgot": 2})
        summary = call(rx, "GET", "/cmdai/summary")[1]
        assert summary["received"] == 0 and summary["byType"] == {}
        assert summary["since"] is not None
        assert call(rx, "GET", "/cmdai/messages")[1] == []
        # A messageId seen before the reset is not a duplicate after it.
        post(rx, "/v1/batch", {"batch": [msg(messageId="a")]})
        assert [entry["flags"] for entry in call(rx, "GET", "/cmdai/messages")[1]] == [[]]
        # The inspection API is not counted as Tracking API requests.
        assert rx.stats.requests == 2 and rx.stats.accepted == 3
    assert [json.loads(line)["messageId"] for line in out.read_text().splitlines()] == [
        "a",
        "b",
        "a",
    ]


def test_unknown_routes_and_wrong_methods(rx: Receiver) -> None:
    assert call(rx, "GET", "/cmdai/nothing")[0] == 404
    status, body = call(rx, "POST", "/cmdai/summary")
    assert status == 405 and "GET /cmdai/summary" in body["message"]
    assert call(rx, "GET", "/cmdai/reset")[0] == 405
    assert call(rx, "GET", "/health")[0] == 200
    # The Tracking API is untouched by the inspection routes.
    assert post(rx, "/v1/track", msg())[0] == 200


def test_keep_bounds_memory_and_counts_what_it_dropped() -> None:
    with Receiver(ListenOptions(keep=3)) as rx:
        for n in range(4):
            batch = [msg(messageId=f"{n}-{i}") for i in range(2)]
            assert post(rx, "/v1/batch", {"batch": batch})[0] == 200
        summary = call(rx, "GET", "/cmdai/summary")[1]
        kept = call(rx, "GET", "/cmdai/messages")[1]
    assert (summary["received"], summary["kept"], summary["droppedByKeep"]) == (8, 3, 5)
    assert summary["byType"] == {"track": 8}
    assert ids(kept) == ["2-1", "3-0", "3-1"]


def test_kept_store_on_its_own() -> None:
    kept = Kept(keep=2, remember_ids=2)
    for n, message_id in enumerate(["a", "b", "c", "a"]):
        message = {"type": "track", "event": "E", "userId": n, "messageId": message_id}
        encoded = json.dumps(message).encode()
        assert kept.add_batch([(message, encoded, ())], f"2024-01-01T00:00:0{n}.000Z", "/p") == [()]
    # Ids are remembered only for the last `remember_ids` messages: "a" was forgotten.
    assert [entry.flags for entry in kept.entries()] == [(), ()]
    assert kept.dropped == 2 and kept.by_event == {"E": 4}
    assert [entry.user_id for entry in kept.entries()] == [2, 3]
    none = Kept(keep=0)
    flags = none.add_batch([({"type": "track"}, b"{}", ())], "2024-01-01T00:00:00.000Z", "/p")
    assert flags == [("no userId or anonymousId", "track without event")]
    assert none.entries() == [] and none.dropped == 1 and none.received == 1


def test_rows_and_entries_are_filtered_alike() -> None:
    kept = Kept()
    messages: list[dict[str, Any]] = [
        {"type": "track", "event": "Opened", "userId": "u1"},
        {"type": "track", "event": "Closed", "userId": 7},
        {"type": "identify", "anonymousId": "a1"},
        {"type": 5, "event": 6.5},
        {"type": "track", "event": "Opened", "userId": "u1", "messageId": "m"},
        {"type": "track", "event": "Opened", "userId": "u2", "messageId": "m"},
    ]
    for n, message in enumerate(messages):
        kept.add_batch(
            [(message, json.dumps(message).encode(), ())], f"2024-01-01T00:00:0{n}.000Z", "/"
        )
    queries = [
        Query(),
        Query(types=["track"], events=["Opened", "Closed"]),
        Query(user_ids=["7", "u2"]),
        Query(anonymous_ids=["a1"]),
        Query(types=["5"], events=["6.5"]),
        Query(flagged=True),
        Query(flagged=False, since="2024-01-01T00:00:02.000Z", limit=2),
        Query(limit=0),
    ]
    for query in queries:
        by_rows = [tuple(row) for row in query.select_rows(kept.rows())]
        assert by_rows == [tuple(entry) for entry in query.select(kept.entries())], query
