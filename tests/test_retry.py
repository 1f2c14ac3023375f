from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from cmdai_cli.retry import RetryPolicy, is_retryable_status, parse_reset, parse_retry_after

NOW = datetime(2025, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_retryable_statuses() -> None:
    for status in (408, 429, 500, 502, 503, 504, 599):
        assert is_retryable_status(status), status
    for status in (200, 400, 401, 403, 404, 409, 413, 422):
        assert not is_retryable_status(status), status


def test_a_request_that_is_not_idempotent_is_retried_only_when_surely_not_processed() -> None:
    assert not is_retryable_status(500, idempotent=False)
    for status in (408, 429, 502, 503, 504):
        assert is_retryable_status(status, idempotent=False), status


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after("-3") == 0.0


def test_retry_after_as_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=NOW) == 30.0
    earlier = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=NOW) == 0.0


def test_unreadable_retry_after_is_none() -> None:
    for value in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(value) is None, value


def test_rate_limit_reset_in_its_three_units() -> None:
    now = 1_700_000_000.0
    assert parse_reset("1700000012", now=now) == 12.0
    assert parse_reset("1700000012500", now=now) == 12.5
    assert parse_reset("7", now=now) == 7.0
    assert parse_reset("1699999990", now=now) == 0.0
    assert parse_reset("x", now=now) is None
    assert parse_reset(None, now=now) is None


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    rng = random.Random(1)
    for retry, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)):
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter: the delays spread over the whole range, not around one value.
        assert max(delays) > ceiling * 0.8
        assert min(delays) < ceiling * 0.2


def test_decide_gives_up_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=2, base_delay=0.01)
    assert policy.decide(1, 0.0, status=503).retry
    assert policy.decide(2, 0.0, status=503).retry
    last = policy.decide(3, 0.0, status=503)
    assert not last.retry
    assert "3 attempts" in last.reason


def test_decide_uses_the_servers_wait() -> None:
    decision = RetryPolicy().decide(1, 0.0, status=429, server_wait=7.5)
    assert decision.retry and decision.delay == 7.5


def test_decide_refuses_a_wait_past_the_total_limit() -> None:
    policy = RetryPolicy(max_total_wait=10.0)
    assert policy.decide(1, 4.0, status=429, server_wait=6.0).retry
    decision = policy.decide(1, 4.0, status=429, server_wait=6.5)
    assert not decision.retry
    assert "limit" in decision.reason


def test_decide_does_not_retry_what_cannot_be_cured() -> None:
    policy = RetryPolicy()
    assert not policy.decide(1, 0.0, status=422).retry
    assert not policy.decide(1, 0.0, status=500, idempotent=False).retry
    assert not policy.decide(1, 0.0, network_error=True, idempotent=False).retry
    assert policy.decide(1, 0.0, network_error=True).retry
    assert not policy.decide(1, 0.0).retry


@given(
    max_retries=st.integers(0, 8),
    base=st.floats(0.0, 5.0),
    cap=st.floats(0.0, 60.0),
    budget=st.floats(0.0, 100.0),
    server=st.one_of(st.none(), st.floats(0.0, 50.0)),
    seed=st.integers(0, 1000),
)
def test_a_retry_loop_is_bounded_in_tries_and_in_time(
    max_retries: int, base: float, cap: float, budget: float, server: float | None, seed: int
) -> None:
    policy = RetryPolicy(
        max_retries=max_retries, base_delay=base, max_delay=cap, max_total_wait=budget
    )
    rng = random.Random(seed)
    attempt, waited = 0, 0.0
    while True:
        attempt += 1
        assert attempt <= max_retries + 1
        decision = policy.decide(attempt, waited, status=429, server_wait=server, rng=rng)
        if not decision.retry:
            break
        waited += decision.delay
    assert waited <= budget + 1e-9


def test_quota_hint_reads_both_header_families_and_the_reset_only_beside_a_count() -> None:
    from cmdai_cli.retry import quota_hint

    now = 1_700_000_000.0
    github = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000030"}
    assert quota_hint(github, now=now) == (0, 30.0)
    draft = {"ratelimit-remaining": "12", "ratelimit-reset": "5"}
    assert quota_hint(draft, now=now) == (12, 5.0)
    # A reset alone says nothing on a clean answer; on a 429 it is when to come back
    # (Segment sends it so, in seconds).
    assert quota_hint({"x-ratelimit-reset": "5"}, now=now) == (None, None)
    assert quota_hint({"x-ratelimit-reset": "5"}, now=now, refused=True) == (None, 5.0)
    assert quota_hint({"x-ratelimit-remaining": "lots"}, now=now) == (None, None)
