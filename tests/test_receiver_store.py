"""What the receiver keeps: the out file, callbacks and waiting for a message."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmdai_cli.receiver import ListenOptions, Received, Receiver

from .receiver_http import msg, post


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def test_out_file_after_concurrent_burst_equals_what_was_acknowledged(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    acknowledged: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        for i in range(20):
            items = [msg(messageId=f"{n}-{i}-{j}") for j in range(5)]
            if i % 7 == 3:
                items.append({"type": "track", "properties": {"blob": "x" * 40_000}})
            conn.request("POST", "/v1/batch", body=json.dumps({"batch": items}))
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    acknowledged.extend(m["messageId"] for m in items)
        conn.close()

    with Receiver(ListenOptions(out=out)) as receiver:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    lines = out.read_bytes().splitlines()
    stored = [json.loads(line)["messageId"] for line in lines]
    assert len(acknowledged) == 8 * 17 * 5
    assert sorted(stored) == sorted(acknowledged)
    assert all("writeKey" not in json.loads(line) for line in lines)


def test_out_file_is_appended_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    out.write_text('{"earlier": true}\n')
    with Receiver(ListenOptions(out=out)) as rx:
        post(rx, "/v1/track", msg())
    assert out.read_text().count("\n") == 2


def test_empty_batches_leave_no_line_in_the_out_file(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    with Receiver(ListenOptions(out=out)) as rx:
        assert post(rx, "/v1/batch", {"batch": []})[0] == 200
        post(rx, "/v1/track", msg(messageId="only"))
        assert post(rx, "/v1/batch", {"batch": []})[0] == 200
    lines = out.read_text().split("\n")
    assert lines[-1] == "" and [json.loads(line)["messageId"] for line in lines[:-1]] == ["only"]


def test_a_failing_callback_does_not_break_the_receiver() -> None:
    seen: list[str] = []

    def callback(batch: list[Received]) -> None:
        seen.extend(received.message["messageId"] for received in batch)
        raise RuntimeError("boom")

    with Receiver(on_batch=callback) as rx:
        assert post(rx, "/v1/track", msg(messageId="a"))[0] == 200
        assert post(rx, "/v1/track", msg(messageId="b"))[0] == 200
    assert seen == ["a", "b"]
    assert rx.stats.callback_errors == 2


def test_wait_for_a_message_id(rx: Receiver) -> None:
    timer = threading.Timer(0.1, post, args=(rx, "/v1/track", msg(messageId="late")))
    timer.start()
    found = rx.wait_for(message_id="late", timeout=5)
    timer.join()
    assert [r.message["messageId"] for r in found] == ["late"]
    assert rx.wait_for(message_id="never", timeout=0.05) == []
