"""A webhook replay against a server that rate-limits: everything arrives once, a request
answered 429 comes back no sooner than its Retry-After, and the rate learnt from the 429s
keeps them a minority. The one time check is that lower bound, which the server sets."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SHARED_SECRET
from tests.fault_server import FaultServer
from tests.test_replay_cli import make_events, write_ndjson


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)


def test_a_rate_limited_server_gets_everything_once_and_few_429s(cli, tmp_path) -> None:
    events = make_events(200)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    with FaultServer(
        kind="webhook", secret=SHARED_SECRET, rate_limit=80.0, burst=8.0, limit_retry_after="1"
    ) as server:
        result = cli("replay", str(source), "--to", "webhook", "--url", server.url, "--json")
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert set(server.ids) == {e["messageId"] for e in events}
        assert server.duplicates == 0 and server.bad_signatures == 0
        refused = [seen for seen in server.requests if seen.fault.status == 429]
        assert refused, "the server never limited the replay"
        assert summary["retries"] == len(refused)
        assert summary["retry_wait_s"] >= len(refused) * 1.0
        # Each refused request came back, and not before the second it was asked to wait.
        arrivals: dict[bytes, list[float]] = {}
        for seen in server.requests:
            arrivals.setdefault(seen.body, []).append(seen.at)
        for seen in refused:
            later = [at for at in arrivals[seen.body] if at > seen.at]
            assert later and min(later) - seen.at >= 1.0
        # Without a learnt rate nearly every request past the first burst is refused.
        assert len(refused) < len(server.requests) / 2
