"""The delivery engine and its brakes: retries that hold no slot, the adaptive limit, the
learnt rate, the bounded backlog, and a checkpoint that is exact whatever order answers
come back in. Sends are coroutines the test controls; no timing is asserted beyond the
lower bound a server's Retry-After sets."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cmdai_cli.replay.batching import Batch, Pending
from cmdai_cli.replay.checkpoint import Checkpoint, read_journal
from cmdai_cli.replay.delivery import Delivery
from cmdai_cli.replay.delivery_control import AdaptiveLimit, InFlight, LearntRate, RateLimiter
from cmdai_cli.replay.delivery_record import Answer
from cmdai_cli.retry import RetryPolicy

QUICK = RetryPolicy(max_retries=3, base_delay=0.001, max_delay=0.001)


def _batch(n: int) -> Batch:
    return Batch(n, n + 1, [{"n": n}], [Pending(n, "in.ndjson", n + 1, {"n": n})])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never came true: {what}"
        time.sleep(0.002)


def make(send: Any, **kwargs: Any) -> tuple[Delivery, list[int], list[tuple[int, int | None]]]:
    acked: list[int] = []
    failed: list[tuple[int, int | None]] = []
    kwargs.setdefault("policy", QUICK)
    delivery = Delivery(
        send,
        on_ack=lambda b, a: acked.append(b.start),
        on_fail=lambda b, reason, status, attempts: failed.append((b.start, status)),
        **kwargs,
    )
    return delivery, acked, failed


def test_retries_then_acknowledges_or_gives_up() -> None:
    answers = {
        0: [Answer(False, 503), Answer(False, None), Answer(True, 200)],
        1: [Answer(False, 400, "bad")],
        2: [Answer(False, 500)] * 10,
    }
    attempts: dict[int, int] = {}

    async def send(batch: Batch) -> Answer:
        attempts[batch.start] = attempts.get(batch.start, 0) + 1
        return answers[batch.start].pop(0)

    delivery, acked, failed = make(send, concurrency=2)
    for n in range(3):
        delivery.submit(_batch(n))
    delivery.finish()
    assert acked == [0]
    assert sorted(failed) == [(1, 400), (2, 500)]
    assert attempts == {0: 3, 1: 1, 2: 4}
    assert delivery.counters.retries == 2 + 3
    assert delivery.counters.requests == 3 + 1 + 4
    assert delivery.counters.retry_wait > 0


def test_a_request_waiting_for_its_retry_holds_no_slot() -> None:
    # One slot. The first batch is told to come back in a minute; the others go at once.
    async def send(batch: Batch) -> Answer:
        if batch.start == 0:
            return Answer(False, 503, "busy", retry_after=60.0)
        return Answer(True, 200)

    delivery, acked, failed = make(send, concurrency=1, policy=RetryPolicy(max_total_wait=600))
    for n in range(4):
        delivery.submit(_batch(n))
    wait_for(lambda: len(acked) == 3, "the batches behind the waiting one were sent")
    assert acked == [1, 2, 3] and delivery.counters.waiting == 1
    delivery.stop()
    delivery.finish()
    assert failed == [] and delivery.counters.abandoned == 1  # pending, for a resume


def test_retry_after_is_waited_before_the_request_goes_again() -> None:
    sent_at: list[float] = []

    async def send(batch: Batch) -> Answer:
        sent_at.append(time.monotonic())
        if len(sent_at) == 1:
            return Answer(False, 429, "slow down", retry_after=0.3)
        return Answer(True, 200)

    delivery, acked, _ = make(send, policy=RetryPolicy(max_retries=3, base_delay=0.0))
    delivery.submit(_batch(0))
    delivery.finish()
    assert acked == [0]
    assert sent_at[1] - sent_at[0] >= 0.3


def test_the_limit_falls_on_overload_and_recovers_on_clean_answers() -> None:
    limit = AdaptiveLimit(16, start=8)
    for _ in range(3):
        limit.overloaded()
    assert limit.current == 5  # 8 * 0.9^3
    limit.clean(in_flight=1)  # an unused limit is not raised
    assert limit.current == 5
    while limit.current < 16:
        limit.clean(in_flight=limit.current)
    limit.clean(in_flight=16)
    assert limit.current == 16  # the ceiling holds
    for _ in range(100):
        limit.overloaded()
    assert limit.current == 1


def test_503s_lower_the_limit_in_a_run_and_clean_answers_raise_it_again() -> None:
    seen: list[int] = []
    calls = 0

    async def send(batch: Batch) -> Answer:
        nonlocal calls
        calls += 1
        seen.append(delivery.counters.limit)
        await asyncio.sleep(0)
        if 5 <= calls < 25:
            return Answer(False, 503, "overloaded", retry_after=0.0)
        return Answer(True, 200)

    # Enough retries that no batch runs out of them whichever of the 20 503s it meets.
    policy = RetryPolicy(base_delay=0, max_retries=25)
    delivery, acked, _ = make(send, concurrency=8, start=8, policy=policy)
    for n in range(200):
        delivery.submit(_batch(n))
    delivery.finish()
    assert sorted(acked) == list(range(200))
    lowest = min(seen)
    assert lowest < 8
    assert seen[-1] > lowest
    assert delivery.counters.max_in_flight <= 8


def test_the_backlog_is_bounded_and_submit_waits_for_room() -> None:
    async def send(batch: Batch) -> Answer:
        return Answer(False, 503, "busy", retry_after=60.0)

    delivery, _, _ = make(send, concurrency=2, backlog=3, policy=RetryPolicy(max_total_wait=600))
    handed = [0]

    def reader() -> None:
        for n in range(50):
            delivery.submit(_batch(n))
            handed[0] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    # Room for 3 x 2 in flight (stragglers included) and a backlog of 3.
    assert delivery.capacity == 9
    wait_for(lambda: delivery.counters.waiting == 9, "the backlog filled")
    assert thread.is_alive() and handed[0] == 9  # the tenth waits for room
    delivery.stop()
    thread.join(10)
    delivery.finish()
    assert not thread.is_alive()
    assert delivery.counters.max_waiting == 9
    assert delivery.counters.abandoned == 50


def test_stop_cancels_requests_in_flight_after_the_grace() -> None:
    never = threading.Event()

    async def send(batch: Batch) -> Answer:
        while not never.is_set():
            await asyncio.sleep(3600)
        return Answer(True, 200)

    delivery, acked, _ = make(send, concurrency=4, grace=0.05)
    for n in range(6):
        delivery.submit(_batch(n))
    wait_for(lambda: delivery.counters.in_flight == 4, "four requests in flight")
    delivery.stop()
    delivery.finish()
    assert acked == [] and delivery.counters.abandoned == 6


def test_checkpoint_is_exact_under_out_of_order_answers(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    checkpoint = Checkpoint.open(path, {"key": "k"}, resume=False)
    gates: dict[int, asyncio.Event] = {}
    release: list[int] = []

    async def send(batch: Batch) -> Answer:
        gate = gates.setdefault(batch.start, asyncio.Event())
        await gate.wait()
        return Answer(batch.start != 5, 200 if batch.start != 5 else 400)

    def on_ack(batch: Batch, answer: Answer) -> None:
        checkpoint.commit(batch.start, batch.end, wait=False)
        release.append(batch.start)

    def on_fail(batch: Batch, reason: str, status: int | None, attempts: int) -> None:
        checkpoint.commit(batch.start, batch.end, failed=len(batch), wait=False)

    delivery = Delivery(
        send, on_ack=on_ack, on_fail=on_fail, policy=QUICK, concurrency=8, start=8, grace=0.05
    )
    for n in range(8):
        delivery.submit(_batch(n))
    wait_for(lambda: len(gates) == 8, "all eight in flight")
    loop = delivery._loop
    assert loop is not None
    for n in (7, 5, 3, 1, 6):  # answered last first; 0, 2 and 4 never
        loop.call_soon_threadsafe(gates[n].set)
    wait_for(lambda: len(release) == 4 and delivery.counters.in_flight == 3, "answers recorded")
    delivery.stop()
    delivery.finish()
    checkpoint.close()
    _, pairs, undelivered = read_journal(path)
    assert sorted(pairs) == [(1, 2), (3, 4), (5, 6), (6, 7), (7, 8)]
    assert undelivered == {"failed": 1, "rejected": 0}
    assert delivery.counters.abandoned == 3


def test_learnt_rate_needs_a_share_of_429s_then_paces_and_grows() -> None:
    now = [0.0]
    rate = LearntRate(clock=lambda: now[0])
    # 1,000 answers over 2 s, one in a hundred a 429 (a busy server's odd refusal).
    for n in range(1000):
        now[0] = 2.0 * n / 1000
        rate.answered(429 if n % 100 == 0 else 200)
    assert rate.current() is None and rate.delay() == 0.0
    # Then a limit: 200 accepted per second, the rest refused, for two seconds.
    for n in range(2000):
        now[0] = 2.0 + n / 1000
        rate.answered(200 if n % 5 == 0 else 429)
    cap = rate.current()
    assert cap is not None and 150 <= cap <= 200
    # Paced: one request every 1/cap seconds.
    assert rate.delay() == 0.0
    assert rate.delay() == pytest.approx(1 / cap)
    now[0] += 3.0
    assert (rate.current() or 0) > cap  # clean seconds raise it


def test_rate_limiter_spaces_reservations() -> None:
    now = [0.0]
    limiter = RateLimiter(100, clock=lambda: now[0])
    assert limiter.reserve(50) == pytest.approx(0.5)
    assert limiter.reserve(50) == pytest.approx(1.0)
    now[0] = 1.0
    assert limiter.reserve(10) == pytest.approx(0.1)
    now[0] = 10.0
    assert limiter.reserve(100) == 0.0  # a second's worth of burst, no more
    assert limiter.reserve(1) > 0


def test_a_request_many_times_slower_than_usual_stops_holding_its_slot() -> None:
    now = [0.0]
    flying: InFlight[str] = InFlight(most=1, clock=lambda: now[0])
    for key in ("hung", "also hung", "quick"):
        flying.sent(key)
    now[0] = 0.02
    flying.answered("quick")
    flying.done("quick")
    assert flying.counted == 2 and not flying.mark_stragglers()  # 20 ms is usual
    now[0] = 1.0
    assert flying.mark_stragglers()
    # Only `most` of them: everything in flight stays bounded.
    assert flying.stragglers == {"hung"} and flying.counted == 1 and flying.total == 2
    flying.done("hung")
    flying.done("also hung")
    assert flying.total == 0 and not flying


def test_a_hung_request_does_not_stall_the_others() -> None:
    hang = asyncio.Event()

    async def send(batch: Batch) -> Answer:
        if batch.start == 0:
            await hang.wait()
        else:
            await asyncio.sleep(0.001)
        return Answer(True, 200)

    delivery, acked, _ = make(send, concurrency=1, grace=0.05)
    for n in range(30):
        delivery.submit(_batch(n))
    # One slot, held by a request that never ends: the rest still go, through the slot
    # it stops holding once it has taken many times the usual answer time.
    wait_for(lambda: len(acked) == 29, "the others were sent")
    assert delivery.counters.max_in_flight == 2
    delivery.stop()
    delivery.finish()
    assert delivery.counters.abandoned == 1


def test_progress_follows_what_was_acknowledged_while_the_reader_waits(tmp_path, monkeypatch):
    from cmdai_cli import profile
    from cmdai_cli.replay.options import ReplayOptions
    from cmdai_cli.replay.run import replay
    from tests.conftest import SHARED_SECRET
    from tests.fault_server import FaultServer
    from tests.test_replay_cli import make_events, write_ndjson

    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    source = write_ndjson(tmp_path / "in.ndjson", make_events(100))
    snapshots: list[Any] = []
    with FaultServer(kind="webhook", secret=SHARED_SECRET, delay=0.01) as server:
        options = ReplayOptions(inputs=[str(source)], to="webhook", url=server.url, concurrency=2)
        result = replay(options, profile.resolve(None, {}), on_progress=snapshots.append)
    assert result.sent == 100 and result.max_in_flight <= 2
    # The reader spent the run waiting for room; the bar moved with the answers.
    assert len({s.sent for s in snapshots if 0 < s.sent < 100}) > 3
    assert all(s.done <= s.read and s.sent <= s.done for s in snapshots)
    assert [s.done for s in snapshots] == sorted(s.done for s in snapshots)
    assert all(s.total == 100 for s in snapshots)
    assert any(0 < s.in_flight <= s.limit <= 2 for s in snapshots)
