"""`cmdai replay` end to end, against loopback servers that inject faults."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_SECRET, TOKEN, WRITE_KEY
from tests.fault_server import DROP, FaultServer, slow, status

FAST = ["--backoff", "0.01", "--max-wait", "10"]


def make_events(n: int, *, ids: bool = True, start: int = 0) -> list[dict[str, Any]]:
    events = []
    for i in range(start, start + n):
        kind = ("identify", "track", "page")[i % 3]
        event: dict[str, Any] = {
            "type": kind,
            "userId": f"user-{i % 17}",
            "timestamp": f"2025-05-{1 + i % 28:02d}T12:00:00.000Z",
            "context": {"ip": "10.0.0.1", "library": {"name": "analytics.js", "version": "1"}},
            "integrations": {"All": True},
        }
        if ids:
            event["messageId"] = f"msg-{i:06d}"
        if kind == "identify":
            event["traits"] = {"plan": "pro", "n": i}
        elif kind == "track":
            event["event"] = "Opened" if i % 2 else "Closed"
            event["properties"] = {"type": "opened"}
        else:
            event["name"] = "Home"
        events.append(event)
    return events


def write_ndjson(path: Path, events: list[Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


@pytest.fixture
def segment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMDAI_WRITE_KEY", WRITE_KEY)


def run_json(cli: Any, *args: str) -> tuple[int, dict[str, Any], str]:
    result = cli("replay", *args, "--json")
    return result.exit_code, json.loads(result.stdout), result.stderr


# ---------------------------------------------------------------- Segment, with faults


def test_every_event_arrives_once_through_faults(cli, tmp_path, segment_env) -> None:
    events = make_events(600)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    faults = [
        status(500),
        status(503),
        DROP,
        status(429, retry_after="1"),
        slow(0.3),
        status(502),
        DROP,
    ]
    with FaultServer(write_key=WRITE_KEY, faults=faults) as server:
        started = time.monotonic()
        code, summary, _ = run_json(
            cli,
            str(source),
            "--to",
            "segment",
            "--host",
            server.url,
            "--batch-size",
            "50",
            "--concurrency",
            "3",
            *FAST,
        )
        elapsed = time.monotonic() - started
        assert code == 0
        assert set(server.ids) == {e["messageId"] for e in events}
        assert server.duplicates == 0
        assert summary["sent"] == server.delivered == 600
        assert summary["read"] == 600
        assert summary["failed"] == summary["rejected"] == summary["skipped"] == 0
        assert summary["retries"] == 6  # every injected failure, the slow answer excepted
        assert summary["requests"] == len(server.requests) == 12 + 6
        assert elapsed >= 1.0  # the 429's Retry-After was honoured
        # Messages keep what they were recorded with; the library's batch envelope only.
        sent = {m["messageId"]: m for body in server.bodies for m in body}
        original = events[4]
        got = sent[original["messageId"]]
        for key in ("timestamp", "userId", "context", "integrations", "event", "properties"):
            assert got[key] == original[key]


def test_batches_respect_segment_limits(cli, tmp_path, segment_env) -> None:
    big = "x" * 20_000
    heavy = make_events(300)
    for event in heavy:
        event["context"]["blob"] = big
    tiny = [
        {"type": "track", "event": "e", "userId": "u", "messageId": f"t{i}"} for i in range(3000)
    ]
    source = write_ndjson(tmp_path / "in.ndjson", heavy + tiny)
    with FaultServer(write_key=WRITE_KEY) as server:
        code, summary, _ = run_json(cli, str(source), "--to", "segment", "--host", server.url)
        assert code == 0 and summary["sent"] == server.delivered == 3300
        sizes = [len(seen.body) for seen in server.requests]
        assert max(sizes) <= 500_000
        assert max(sizes) > 450_000  # batches are filled, not cut early
        assert max(seen.items for seen in server.requests) == 2500


def test_gzip_compresses_segment_batches(cli, tmp_path, segment_env) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(50))
    with FaultServer(write_key=WRITE_KEY) as server:
        code, summary, _ = run_json(
            cli, str(source), "--to", "segment", "--host", server.url, "--gzip"
        )
        assert code == 0 and summary["sent"] == server.delivered == 50
        assert all(seen.headers.get("Content-Encoding") == "gzip" for seen in server.requests)


def test_an_event_without_messageid_gets_the_same_one_every_run(cli, tmp_path, segment_env):
    events = make_events(30, ids=False)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    with FaultServer(write_key=WRITE_KEY) as server:
        for _ in range(2):
            code, summary, _ = run_json(cli, str(source), "--to", "segment", "--host", server.url)
            assert code == 0 and summary["sent"] == 30
        assert len(server.ids) == 30
        assert all(count == 2 for count in server.ids.values())


def test_refused_batches_go_to_the_dead_letter_file_and_replay_from_it(
    cli, tmp_path, segment_env
) -> None:
    events = make_events(100)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    dead = tmp_path / "dead.ndjson"
    # By batch, not by arrival: a batch waiting for its retry does not hold up the next.
    faults = {"msg-000000": [status(400)], "msg-000010": [status(503)] * 3}
    with FaultServer(write_key=WRITE_KEY, by_first_id=faults) as server:
        result = cli(
            "replay",
            str(source),
            "--to",
            "segment",
            "--host",
            server.url,
            "--batch-size",
            "10",
            "--concurrency",
            "1",
            "--max-retries",
            "2",
            "--dead-letter",
            str(dead),
            *FAST,
        )
        # A refusal (400) beside exhausted 503s: refusals decide the exit code.
        assert result.exit_code == 5
        assert "20 failed" in result.stderr and str(dead) in result.stderr
        assert "20 events not delivered" in result.stderr
        lines = [json.loads(line) for line in dead.read_text().splitlines()]
        assert len(lines) == 20
        statuses = sorted({line["error"]["status"] for line in lines})
        assert statuses == [400, 503]
        assert all(line["error"]["source"] == str(source) for line in lines)
        assert server.delivered == 80
        assert not (set(server.ids) & {line["event"]["messageId"] for line in lines})
        # Later, the dead-letter file is replay's input: the same messageIds go out.
        code, summary, _ = run_json(cli, str(dead), "--to", "segment", "--host", server.url)
        assert code == 0 and summary["sent"] == 20
        assert set(server.ids) == {e["messageId"] for e in events}
        assert server.duplicates == 0


def test_unreachable_host_fails_every_event_with_exit_6(cli, tmp_path, segment_env) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(5))
    code, summary, _ = run_json(
        cli,
        str(source),
        "--to",
        "segment",
        "--host",
        "http://127.0.0.1:9",
        "--max-retries",
        "1",
        *FAST,
    )
    assert code == 6
    assert summary["failed"] == 5 and summary["sent"] == 0
    assert Path(summary["dead_letter"]).exists()


# ---------------------------------------------------------------- bad input


def test_bad_records_fail_after_sending_what_came_before(cli, tmp_path, segment_env) -> None:
    events = make_events(10)
    text = "".join(json.dumps(e) + "\n" for e in events[:4]) + "{not json\n"
    text += "".join(json.dumps(e) + "\n" for e in events[4:])
    source = tmp_path / "in.ndjson"
    source.write_text(text)
    with FaultServer(write_key=WRITE_KEY) as server:
        result = cli("replay", str(source), "--to", "segment", "--host", server.url)
        assert result.exit_code == 4
        assert f"{source}:5" in result.stderr
        assert server.delivered == 4


def test_bad_records_skipped_go_to_the_reject_file(cli, tmp_path, segment_env) -> None:
    events = make_events(10)
    events[2].pop("userId")
    events[3]["context"]["blob"] = "y" * 40_000
    text = "".join(json.dumps(e) + "\n" for e in events) + "[1, 2\n"
    source = tmp_path / "in.ndjson"
    source.write_text(text)
    rejects = tmp_path / "rejects.ndjson"
    with FaultServer(write_key=WRITE_KEY) as server:
        result = cli(
            "replay",
            str(source),
            "--to",
            "segment",
            "--host",
            server.url,
            "--on-error",
            "skip",
            "--rejects",
            str(rejects),
            "--json",
        )
        assert result.exit_code == 1
        summary = json.loads(result.stdout)
        assert summary["sent"] == server.delivered == 8
        assert summary["rejected"] == 3 and summary["read"] == 11
        assert summary["rejects"] == str(rejects)
        lines = [json.loads(line) for line in rejects.read_text().splitlines()]
        reasons = sorted(line["error"]["reason"] for line in lines)
        assert any("neither userId nor anonymousId" in r for r in reasons)
        assert any("32 KB" in r for r in reasons)
        assert any("not valid JSON" in r for r in reasons)
        assert {line["error"]["line"] for line in lines} == {3, 4, 11}


def test_over_32kb_is_rejected_even_with_on_error_fail(cli, tmp_path, segment_env) -> None:
    events = make_events(3)
    events[0]["traits"]["blob"] = "z" * 33_000
    source = write_ndjson(tmp_path / "in.ndjson", events)
    with FaultServer(write_key=WRITE_KEY) as server:
        code, summary, _ = run_json(cli, str(source), "--to", "segment", "--host", server.url)
        assert code == 1
        assert summary["rejected"] == 1 and summary["sent"] == server.delivered == 2


# ---------------------------------------------------------------- selection


def test_filters_limit_and_dry_run(cli, tmp_path, segment_env) -> None:
    events = make_events(90)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    with FaultServer(write_key=WRITE_KEY) as server:
        code, summary, _ = run_json(
            cli,
            str(source),
            "--to",
            "segment",
            "--host",
            server.url,
            "--type",
            "track",
            "--event",
            "Opened",
            "--since",
            "2025-05-05",
            "--until",
            "2025-05-20",
        )
        expected = {
            e["messageId"]
            for e in events
            if e["type"] == "track"
            and e.get("event") == "Opened"
            and "2025-05-05" <= e["timestamp"][:10] < "2025-05-20"
        }
        assert code == 0 and set(server.ids) == expected
        assert summary["sent"] == len(expected) and summary["skipped"] == 90 - len(expected)
        code, summary, _ = run_json(
            cli, str(source), "--to", "segment", "--host", server.url, "--limit", "7"
        )
        assert code == 0 and summary["sent"] == 7
        requests = len(server.requests)
        code, summary, _ = run_json(
            cli, str(source), "--to", "segment", "--host", server.url, "--dry-run"
        )
        assert code == 0 and summary["dry_run"] and summary["would_send"] == 90
        assert summary["sent"] == 0 and len(server.requests) == requests


def test_shards_split_the_input_without_overlap(cli, tmp_path, segment_env) -> None:
    events = make_events(200, ids=False)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    seen: list[set[str]] = []
    for k in (1, 2, 3):
        with FaultServer(write_key=WRITE_KEY) as server:
            code, summary, _ = run_json(
                cli, str(source), "--to", "segment", "--host", server.url, "--shard", f"{k}/3"
            )
            assert code == 0 and summary["sent"] == len(server.ids) > 0
            seen.append(set(server.ids))
    assert sum(len(s) for s in seen) == 200
    assert len(seen[0] | seen[1] | seen[2]) == 200


def test_gzip_arrays_and_listen_files_are_read(cli, tmp_path, segment_env) -> None:
    events = make_events(20)
    gz = tmp_path / "a.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(events[:10]).encode()))
    # What `cmdai listen --out` writes: stored messages with receivedAt.
    listen = write_ndjson(
        tmp_path / "listen.ndjson",
        [
            dict(e, receivedAt="2025-06-01T00:00:00Z", sentAt="2025-06-01T00:00:00Z")
            for e in events[10:]
        ],
    )
    with FaultServer(write_key=WRITE_KEY) as server:
        code, summary, _ = run_json(
            cli, str(gz), str(listen), "--to", "segment", "--host", server.url
        )
        assert code == 0 and summary["sent"] == 20
        assert set(server.ids) == {e["messageId"] for e in events}
        # The capture's own sentAt is not replayed: the library stamps a fresh one.
        sent_ats = {m.get("sentAt") for body in server.bodies for m in body}
        assert "2025-06-01T00:00:00Z" not in sent_ats


# ---------------------------------------------------------------- webhook and bulk-identify


def test_webhook_single_bodies_are_mapped_and_signed(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    mapping = tmp_path / "map.toml"
    mapping.write_text(
        '[mapping]\nuserId = "$.userId"\nmessageId = "$.messageId"\n'
        '"user_property.plan" = "$.traits.plan"\nsource = "replay"\n'
    )
    events = [dict(e, traits={"plan": "pro", "ü": "ß"}) for e in make_events(30)]
    source = write_ndjson(tmp_path / "in.ndjson", events)
    with FaultServer(kind="webhook", secret=SHARED_SECRET, faults=[status(503), DROP]) as server:
        code, summary, _ = run_json(
            cli,
            str(source),
            "--to",
            "webhook",
            "--url",
            server.url + "/hook?token=abc",
            "--mapping",
            str(mapping),
            *FAST,
        )
        assert code == 0 and summary["sent"] == 30 and summary["retries"] == 2
        assert server.bad_signatures == 0 and len(server.bodies) == 30
        first = next(b for b in server.bodies if b["messageId"] == events[0]["messageId"])
        assert first == {
            "userId": events[0]["userId"],
            "messageId": events[0]["messageId"],
            "user_property.plan": "pro",
            "source": "replay",
        }
        assert "token=abc" not in summary["destination"]


def test_webhook_batches_sign_the_first_event(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", SHARED_SECRET)
    events = make_events(25)
    source = write_ndjson(tmp_path / "in.ndjson", events)
    with FaultServer(kind="webhook", secret=SHARED_SECRET) as server:
        code, summary, _ = run_json(
            cli, str(source), "--to", "webhook", "--url", server.url, "--batch-size", "10"
        )
        assert code == 0 and summary["sent"] == 25
        assert sorted(len(b) for b in server.bodies) == [5, 10, 10]
        assert server.bad_signatures == 0
        assert set(server.ids) == {e["messageId"] for e in events}
    # A wrong secret is caught by the server: the events are refused and dead-lettered.
    monkeypatch.setenv("CMDAI_WEBHOOK_SHARED_SECRET", "another-secret-value")
    with FaultServer(kind="webhook", secret=SHARED_SECRET) as server:
        code, summary, _ = run_json(
            cli, str(source), "--to", "webhook", "--url", server.url, "--batch-size", "10"
        )
        assert code == 5 and summary["failed"] == 25 and server.bad_signatures == 3


@pytest.mark.parametrize("header", [None, "X-API-KEY"])
def test_bulk_identify_merges_per_user(cli, tmp_path, monkeypatch, header) -> None:
    monkeypatch.setenv("CMDAI_COMMANDAI_API_TOKEN", TOKEN)
    monkeypatch.setenv("CMDAI_ORG_ID", "org42")
    if header:
        monkeypatch.setenv("CMDAI_COMMANDAI_AUTH_HEADER", header)
    events = [
        {"type": "identify", "userId": "u1", "traits": {"plan": "free", "seats": 1}},
        {"type": "identify", "userId": "u2", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "u1", "event": "x", "user_property_event": "installed"},
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        {"type": "identify", "traits": {"plan": "none"}},
        {"type": "identify", "userId": 7, "traits": {"n": 1}},
    ]
    source = write_ndjson(tmp_path / "in.ndjson", events)
    auth = (header, TOKEN) if header else ("Authorization", f"Bearer {TOKEN}")
    with FaultServer(kind="bulk", auth=auth, faults=[status(429, retry_after="0")]) as server:
        code, summary, _ = run_json(
            cli, str(source), "--to", "bulk-identify", "--host", server.url, *FAST
        )
        assert code == 0, summary
        assert server.bad_auth == 0
        assert {r.path for r in server.requests} == {"/api/org42/bulk-identify/"}
        assert server.bodies == [
            [
                {"id": "u1", "properties": {"plan": "pro", "seats": 1, "installed": True}},
                {"id": "u2", "properties": {"plan": "pro"}},
                {"id": "7", "properties": {"n": 1}},
            ]
        ]
        assert summary["sent"] == 5 and summary["skipped"] == 1 and summary["retries"] == 1


def test_missing_settings_are_config_errors(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(1))
    result = cli("replay", str(source), "--to", "segment")
    assert result.exit_code == 3 and "write key" in result.stderr
    result = cli("replay", str(source), "--to", "webhook")
    assert result.exit_code == 3 and "webhook URL" in result.stderr
    result = cli("replay", str(source), "--to", "segment", "--shard", "4/3")
    assert result.exit_code == 2
    result = cli("replay", str(tmp_path / "nope.ndjson"), "--to", "segment", "--dry-run")
    assert result.exit_code == 4 and "no such file" in result.stderr


def test_rate_limits_events_per_second(cli, tmp_path, segment_env) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(60))
    with FaultServer(write_key=WRITE_KEY) as server:
        started = time.monotonic()
        code, summary, _ = run_json(
            cli, str(source), "--to", "segment", "--host", server.url, "--rate", "100"
        )
        elapsed = time.monotonic() - started
        assert code == 0 and summary["sent"] == 60
        assert elapsed >= 0.5  # 60 events at 100/s, none ahead of its time
        assert max(seen.items for seen in server.requests) <= 100


def test_stdin_and_invalid_events_under_on_error_fail(cli, tmp_path, segment_env) -> None:
    events = make_events(6)
    events[3].pop("userId")
    text = "".join(json.dumps(e) + "\n" for e in events)
    with FaultServer(write_key=WRITE_KEY) as server:
        result = cli("replay", "-", "--to", "segment", "--host", server.url, input=text)
        assert result.exit_code == 4
        assert "<stdin>:4" in result.stderr and "neither userId nor anonymousId" in result.stderr
        assert server.delivered == 3


def test_webhook_url_is_used_exactly_as_given(cli, tmp_path) -> None:
    source = write_ndjson(tmp_path / "in.ndjson", make_events(2))
    with FaultServer(kind="webhook") as server:
        code, summary, _ = run_json(
            cli, str(source), "--to", "webhook", "--url", server.url + "/api/hook/"
        )
        assert code == 0 and summary["sent"] == 2
        assert {seen.path for seen in server.requests} == {"/api/hook/"}


def test_a_dry_run_exits_as_its_help_says(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CMDAI_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    events = tmp_path / "events.ndjson"
    events.write_text('{"type":"identify","userId":"u1","traits":{}}\n{"type":\n')
    help_text = " ".join(cli("replay", "--help").stdout.split())
    assert "with --on-error fail (the default) a bad record stops it with exit 4" in help_text
    assert "with --on-error skip it exits 1 when some events would be rejected" in help_text
    stopped = cli("replay", "--to", "webhook", "--dry-run", str(events))
    assert stopped.exit_code == 4, stopped.stderr
    skipped = cli("replay", "--to", "webhook", "--dry-run", "--on-error", "skip", str(events))
    assert skipped.exit_code == 1, skipped.stderr
    events.write_text('{"type":"identify","userId":"u1","traits":{}}\n')
    clean = cli("replay", "--to", "webhook", "--dry-run", str(events))
    assert clean.exit_code == 0, clean.stderr
