"""The official SDKs at their own limits: whatever they send is captured, never refused.

analytics-python checks each message against 32 << 10 bytes as `json.dumps` writes it
and closes a batch once its messages reach 475,000 bytes (segment/analytics/consumer.py);
analytics-node checks 32 KB per event and 480 KB per batch (context-batch.ts). What lies
between Segment's stated limits read in 1000s and in 1024s is accepted and flagged.
"""

from __future__ import annotations

import json
import queue
import subprocess
from datetime import datetime
from typing import Any

import pytest
from segment.analytics import Client
from segment.analytics.consumer import BATCH_SIZE_LIMIT, MAX_MSG_SIZE, Consumer
from segment.analytics.request import DatetimeSerializer

from cmdai_cli.receiver import ListenOptions, Receiver

from .node_env import NODE_DIR, node_or_skip
from .receiver_http import KEY

STAMP = "2024-05-01T12:34:56.789000+00:00"


def sdk_message(index: int, size: int) -> dict[str, Any]:
    """A track built by analytics-python itself, padded to `size` bytes as it measures."""
    dry = Client(KEY, send=False)

    def build(padding: int) -> dict[str, Any]:
        ok, message = dry.track(
            "user-1",
            "Large",
            {"blob": "x" * padding},
            timestamp=datetime.fromisoformat(STAMP),
            message_id=f"py-large-{index:03d}",
        )
        assert ok
        return dict(message)

    def measured(message: dict[str, Any]) -> int:
        return len(json.dumps(message, cls=DatetimeSerializer).encode())

    message = build(size - measured(build(0)))
    assert measured(message) == size
    return message


def upload(url: str, messages: list[dict[str, Any]]) -> tuple[bool, list[Any]]:
    """One batch through the SDK's own consumer, from a queue filled beforehand."""
    waiting: queue.Queue[dict[str, Any]] = queue.Queue()
    for message in messages:
        waiting.put(message)
    errors: list[Any] = []
    consumer = Consumer(
        waiting,
        KEY,
        host=url,
        upload_interval=0.5,
        retries=0,
        on_error=lambda error, batch: errors.append(error),
    )
    return consumer.upload(), errors


def test_python_message_at_exactly_32768_bytes_is_captured_and_flagged() -> None:
    message = sdk_message(1, MAX_MSG_SIZE)
    with Receiver(ListenOptions(write_key=KEY)) as rx:
        ok, errors = upload(rx.url, [message])
        assert ok and errors == []
        [received] = rx.messages()
    assert received.message["messageId"] == "py-large-001"
    # The batch's sentAt is merged in for storage but was not part of what was measured.
    assert "sentAt" in received.message
    assert received.flags == ("message over 32,000 bytes",)


def test_python_batch_past_500000_bytes_at_the_sdks_threshold_is_captured() -> None:
    # 29 messages stay under 475,000 bytes; the 30th crosses it and closes the batch,
    # which then holds about 507,700 bytes: over "500 KB" in 1000s, under it in 1024s.
    small = [sdk_message(index, 16_379) for index in range(29)]
    assert sum(len(json.dumps(m, cls=DatetimeSerializer)) for m in small) < BATCH_SIZE_LIMIT
    messages = [*small, sdk_message(29, MAX_MSG_SIZE), sdk_message(30, 1000)]
    with Receiver(ListenOptions(write_key=KEY)) as rx:
        ok, errors = upload(rx.url, messages)
        assert ok and errors == []
        received = rx.messages()
    assert len(received) == 30 and rx.stats.requests == 1
    assert all("batch over 500,000 bytes" in r.flags for r in received)


def test_node_events_at_exactly_32768_bytes_and_its_batch_threshold_are_captured() -> None:
    node = node_or_skip("@segment/analytics-node")
    with Receiver(ListenOptions(write_key=KEY)) as rx:
        done = subprocess.run(
            [node, str(NODE_DIR / "sizes.mjs"), rx.url, KEY, "16"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        sent = json.loads(done.stdout.splitlines()[-1])
        received = rx.messages()
    assert sent["errors"] == [] and sent["sizes"] == [32 * 1024] * 16
    # The SDK closed its first batch at its 480 KB threshold.
    assert sent["batches"] == [15, 1]
    assert sorted(r.message["messageId"] for r in received) == [
        f"node-large-{index:03d}" for index in range(1, 17)
    ]
    assert all(r.flags == ("message over 32,000 bytes",) for r in received)


def test_what_the_request_merges_in_is_not_measured() -> None:
    from cmdai_cli.receiver.protocol import Rejected, parse_encoded

    def item(size: int) -> dict[str, Any]:
        base: dict[str, Any] = {"type": "track", "userId": "u", "event": "e"}
        base["properties"] = {"blob": ""}
        base["properties"]["blob"] = "x" * (size - len(json.dumps(base, separators=(",", ":"))))
        return base

    shared = {"context": {"ip": "203.0.113.7", "library": {"name": "x" * 100}}}
    for extra in ({}, shared, {"sentAt": "2024-05-01T00:00:00.000Z"}):
        body = json.dumps({"batch": [item(32_768), item(32_000)], **extra}).encode()
        parsed = parse_encoded("/v1/batch", body, None, None, "2024-05-01T00:00:01.000Z")
        assert [flags for _, _, flags in parsed] == [("message over 32,000 bytes",), ()]
        over = json.dumps({"batch": [item(32_769)], **extra}).encode()
        with pytest.raises(Rejected, match="32769 bytes"):
            parse_encoded("/v1/batch", over, None, None, "2024-05-01T00:00:01.000Z")
