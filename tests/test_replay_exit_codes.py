"""`cmdai replay`'s exit code when a service will not take the events.

The rule: 5 when the service answered and refused (a 4xx, or 429 until the retries ran
out); 6 when it could not be reached, timed out, or kept answering 5xx.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import SHARED_SECRET, TOKEN, WRITE_KEY, Cli
from tests.fault_server import Fault, FaultServer, slow, status
from tests.test_replay_cli import make_events, write_ndjson

# A slow answer is twice the client's time-out; `None` stands for a refused connection.
TIMEOUT = 0.25
CASES: list[tuple[str, Fault | None, int]] = [
    ("400", status(400), 5),
    ("401", status(401), 5),
    ("429 exhausted", status(429, retry_after="0"), 5),
    ("500", status(500), 6),
    ("503", status(503), 6),
    ("timeout", slow(2 * TIMEOUT), 6),
    ("refused connection", None, 6),
]

# Three events make one Segment batch, three webhook bodies, and one bulk-identify
# request (the one user with properties: the other two events record nothing).
BATCHES = {"segment": 1, "webhook": 3, "bulk-identify": 1}
FAILED = {"segment": 3, "webhook": 3, "bulk-identify": 1}
TARGETS = {
    "segment": ("segment", "--host"),
    "webhook": ("webhook", "--url"),
    "bulk-identify": ("bulk", "--host"),
}


def closed_port_url() -> str:
    """A loopback URL nothing listens on: the port was just bound, then let go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def endpoint(kind: str, fault: Fault | None) -> Iterator[tuple[str, FaultServer | None]]:
    if fault is None:
        yield closed_port_url(), None
        return
    server = FaultServer(
        kind=kind,
        fault_for=lambda _n: fault,
        write_key=WRITE_KEY if kind == "segment" else None,
        secret=SHARED_SECRET if kind == "webhook" else None,
        auth=("Authorization", f"Bearer {TOKEN}") if kind == "bulk" else None,
    )
    with server:
        yield server.url, server


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize(("case", "fault", "expected"), CASES, ids=[c[0] for c in CASES])
def test_exit_code_follows_the_kind_of_failure(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    case: str,
    fault: Fault | None,
    expected: int,
) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    monkeypatch.setenv("CMDAI_COMMANDAI_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_ORG_ID", "org42")
    source = write_ndjson(tmp_path / "in.ndjson", make_events(3))
    kind, flag = TARGETS[target]
    with endpoint(kind, fault) as (url, server):
        result = cli(
            "replay",
            str(source),
            "--to",
            target,
            flag,
            url,
            "--concurrency",
            "1",
            "--max-retries",
            "1",
            "--backoff",
            "0.01",
            "--timeout",
            str(TIMEOUT),
            "--json",
        )
        if server is not None and fault is not None and fault.kind != "slow":
            # Every try got the injected answer; 4xx but 429 are not retried. (A timed
            # out request is left out: the client may give up before the server counts it.)
            tries = 1 if case in ("400", "401") else 2
            assert len(server.requests) == BATCHES[target] * tries
            assert server.delivered == 0
    assert result.exit_code == expected, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sent"] == 0 and summary["failed"] == FAILED[target]
    assert "not delivered" in result.stderr and "Traceback" not in result.stderr


def test_refusals_decide_when_some_batches_were_refused_and_others_unanswered(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    source = write_ndjson(tmp_path / "in.ndjson", make_events(2))
    faults = [status(400), status(503), status(503)]
    with FaultServer(kind="webhook", secret=SHARED_SECRET, faults=faults) as server:
        result = cli(
            "replay", str(source), "--to", "webhook", "--url", server.url,
            "--concurrency", "1", "--max-retries", "1", "--backoff", "0.01", "--json",
        )  # fmt: skip
    assert result.exit_code == 5, result.stderr
    assert json.loads(result.stdout)["failed"] == 2


def test_only_rejected_events_exit_1(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)
    events = make_events(3)
    events[1].pop("userId")
    source = write_ndjson(tmp_path / "in.ndjson", events)
    with FaultServer(write_key=WRITE_KEY) as server:
        result = cli(
            "replay", str(source), "--to", "segment", "--host", server.url,
            "--on-error", "skip", "--json",
        )  # fmt: skip
        assert server.delivered == 2
    assert result.exit_code == 1, result.stderr
    assert json.loads(result.stdout)["rejected"] == 1
