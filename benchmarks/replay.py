"""Benchmark: `cmdai replay --to segment` against a plain segment-analytics-python script.

Both send the same events, read from one NDJSON file (100,000 by default), to the same
loopback sink: by default a counting sink in its own process, which parses every batch,
answers 200 `{"success": true}` as Segment does and records each messageId, so that
every run is checked to have delivered each messageId exactly once, and does no more,
so that the sink takes as little of the machine as it can from the senders.
`--sink receiver` uses the project's Segment-compatible receiver instead (in this
process), which also checks each message as Segment would, at a higher cost per event.

The plain script does what the library's documentation shows: `Client.track/identify/
page` per event, then `flush()` (with a queue large enough that it drops nothing, so
both deliver every event). Throughput is events per second of wall time, process start
to exit, both with byte-code caches as installed, best of N alternating runs (5 by
default: on a shared virtual machine, whole stretches of runs are slowed, and the
parallel replay more than the single-threaded script). Every run's time is printed. Peak
memory (max RSS, from wait4) of the replay is measured at N and at 3N events to show it
does not grow with the input.

    python benchmarks/replay.py                   # 100,000 events, memory at 300,000
    python benchmarks/replay.py --events 200000 --no-memory
    python benchmarks/replay.py --sink receiver --repeat 5
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from cmdai_cli.receiver import ListenOptions, Receiver
from cmdai_cli.receiver.connection import Limits

WRITE_KEY = "wk_benchmark_0123456789abcdef"

PLAIN_SCRIPT = r"""
import sys
from datetime import datetime

import orjson
from segment.analytics import Client

path, host, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = Client(sys.argv[4], host=host, max_queue_size=count + 1)
with open(path, "rb") as f:
    for line in f:
        e = orjson.loads(line)
        common = dict(
            user_id=e.get("userId"), anonymous_id=e.get("anonymousId"),
            context=e.get("context"), integrations=e.get("integrations"),
            message_id=e.get("messageId"),
            timestamp=datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")),
        )
        kind = e["type"]
        if kind == "track":
            ok, _ = client.track(event=e["event"], properties=e.get("properties"), **common)
        elif kind == "identify":
            ok, _ = client.identify(traits=e.get("traits"), **common)
        else:
            ok, _ = client.page(name=e.get("name"), properties=e.get("properties"), **common)
        if not ok:
            sys.exit("the library's queue dropped an event")
client.flush()
"""

AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124.0"


def make_event(rng: random.Random, n: int) -> dict[str, object]:
    user = f"user_{rng.randrange(50_000):05d}"
    kind = ("identify", "track", "page")[rng.randrange(3)]
    event: dict[str, object] = {
        "type": kind,
        "messageId": f"msg-{n:09d}",
        "timestamp": f"2025-05-{1 + n % 28:02d}T12:{n % 60:02d}:{n * 7 % 60:02d}.000Z",
        "userId": user,
        "anonymousId": f"anon-{rng.getrandbits(48):012x}",
        "context": {"ip": f"10.{n % 256}.{n * 3 % 256}.1", "userAgent": AGENT},
        "integrations": {"All": True},
    }
    if kind == "identify":
        event["traits"] = {"email": f"{user}@example.com", "plan": "pro", "seats": n % 50}
    elif kind == "track":
        event["event"] = "Command Execution"
        event["properties"] = {"type": "command_execution", "command": n % 400, "source": "bar"}
    else:
        event["name"] = "Pricing"
        event["properties"] = {"path": "/pricing", "title": "Pricing"}
    return event


def write_events(path: Path, count: int) -> None:
    rng = random.Random(7)
    with open(path, "wb") as handle:
        for start in range(0, count, 10_000):
            block = (make_event(rng, n) for n in range(start, min(count, start + 10_000)))
            handle.write(b"".join(orjson.dumps(e) + b"\n" for e in block))


SINK = r"""
import gzip, socket, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

ids, sizes, lock = set(), [], threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            self.answer(orjson.dumps({"messages": sum(sizes), "unique": len(ids)}))

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        batch = orjson.loads(raw)["batch"]
        with lock:
            sizes.append(len(batch))
            ids.update(message["messageId"] for message in batch)
        self.answer(b'{"success": true}')

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
"""


class CountingSink:
    """The counting sink above, in its own process."""

    def __enter__(self) -> CountingSink:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        return self

    def counts(self) -> tuple[int, int]:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as answer:
            data = orjson.loads(answer.read())
        return data["messages"], data["unique"]

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def run(command: list[str], env: dict[str, str], count: int, sink: str) -> tuple[float, int]:
    """Run `command` against a fresh sink; (seconds, peak RSS in KiB)."""
    server: Any = (
        Receiver(ListenOptions(keep=10, remember_ids=count + 1, limits=Limits(max_connections=64)))
        if sink == "receiver"
        else CountingSink()
    )
    with server:
        full = [part.replace("{URL}", server.url) for part in command]
        started = time.perf_counter()
        proc = subprocess.Popen(full, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"{full[:4]} exited with {proc.returncode}")
        if sink == "receiver":
            stats = server.stats
            messages, unique = stats.accepted, stats.accepted - stats.flagged
        else:
            messages, unique = server.counts()
        if messages != count or unique != count:
            sys.exit(f"{full[:4]}: {messages} messages, {unique} unique ids; want {count}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--no-memory", action="store_true", help="skip the 3N memory run")
    parser.add_argument(
        "--sink",
        choices=("counting", "receiver"),
        default="counting",
        help="where both send: the counting sink, or the project's receiver",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs of each, alternating; the best is kept (this machine's speed drifts)",
    )
    args = parser.parse_args()
    count = args.events
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {
            **os.environ,
            "CMDAI_WRITE_KEY": WRITE_KEY,
            "CMDAI_STATE_DIR": str(base / "state"),
            "CMDAI_CONFIG_DIR": str(base / "config"),
            # Byte-code caches, as an installed package has them, for both senders: with
            # PYTHONDONTWRITEBYTECODE set, every run would compile its modules again.
            "PYTHONPYCACHEPREFIX": str(base / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        source = base / "events.ndjson"
        write_events(source, count)
        size_mb = source.stat().st_size / 1e6
        print(
            f"events: {count:,} in one NDJSON file ({size_mb:.1f} MB); sink: {args.sink}",
            flush=True,
        )

        def replay(path: Path) -> list[str]:
            return [
                sys.executable,
                "-m",
                "cmdai_cli",
                "replay",
                str(path),
                "--to",
                "segment",
                "--host",
                "{URL}",
                "--json",
            ]

        warm = base / "warm.ndjson"
        write_events(warm, 10)
        run(replay(warm), env, 10, args.sink)
        run(
            [sys.executable, "-c", PLAIN_SCRIPT, str(warm), "{URL}", "10", WRITE_KEY],
            env,
            10,
            args.sink,
        )
        plain_argv = [
            sys.executable,
            "-c",
            PLAIN_SCRIPT,
            str(source),
            "{URL}",
            str(count),
            WRITE_KEY,
        ]
        # Alternate the two, best of N each: whatever else the machine does slows both.
        plain_runs, replay_runs = [], []
        for _ in range(max(1, args.repeat)):
            plain_runs.append(run(plain_argv, env, count, args.sink))
            replay_runs.append(run(replay(source), env, count, args.sink))
        plain_s, plain_rss = min(plain_runs)
        replay_s, replay_rss = min(replay_runs)
        plain_rate = count / plain_s
        print(
            f"plain script (Client.track/identify/page + flush): {plain_rate:,.0f} events/s "
            f"({plain_s:.1f} s, peak RSS {plain_rss / 1024:.0f} MB)",
            flush=True,
        )
        replay_rate = count / replay_s
        print(
            f"cmdai replay --to segment: {replay_rate:,.0f} events/s "
            f"({replay_s:.1f} s, peak RSS {replay_rss / 1024:.0f} MB)"
        )
        print(
            f"best of {max(1, args.repeat)} runs each, alternating; all runs (s): "
            f"plain {' '.join(f'{s:.2f}' for s, _ in plain_runs)}, "
            f"replay {' '.join(f'{s:.2f}' for s, _ in replay_runs)}"
        )
        print(f"ratio: {replay_rate / plain_rate:.1f}x the plain script (target: at least 4x)")
        if not args.no_memory:
            big = base / "events-3x.ndjson"
            write_events(big, 3 * count)
            big_s, big_rss = run(replay(big), env, 3 * count, args.sink)
            print(
                f"memory: cmdai replay peak RSS {replay_rss / 1024:.0f} MB at {count:,} events, "
                f"{big_rss / 1024:.0f} MB at {3 * count:,} "
                f"({3 * count / big_s:,.0f} events/s)"
            )


if __name__ == "__main__":
    main()
