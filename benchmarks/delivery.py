"""Benchmark: `cmdai replay --to webhook` over a loopback sink that behaves like a network.

One run measures every target of the delivery engine, each against a fresh sink in its
own process (an asyncio HTTP/1.1 server, so that it takes as little of the machine as
it can, and never the sender's interpreter lock):

- clean: no faults, no latency (the reference for the next line);
- faults: 10% of requests get a fault, in equal shares: 500, 503, 429 with
  `Retry-After: 1`, a dropped connection, an answer `--slow` seconds late (1 s: 20 times
  the usual answer here, 10 times a remote webhook's); target: the median of five runs
  >= 0.55 of clean, and no run under 0.50. The run cannot end before the last slow
  answer and the last retry's wait: at 20,000 events that tail is a large share of the
  run (2 s answers: 0.45, measured), the more so the faster the machine runs clean;
- latency: every answer 50 ms late, as a remote server's, default options;
  target >= 1,000 events/s;
- rate limit: the sink accepts 200 requests/s (a token bucket, bursts of 20) and answers
  429 with `Retry-After: 1` above; target: all delivered, >= 160 events/s, 429s <= 10%
  of all requests;
- shapes (`--only shapes`): a matrix of rate limits, each shape of
  `tests/fault_server.py`'s `SHAPES` (token buckets with bursts of 1/10 s and of a
  whole second, fixed and sliding one-second windows, 429s that say `Retry-After` in
  seconds or as a date, `X-RateLimit-Remaining`/`-Reset` only, or nothing) at 100, 200
  and 1,000 requests/s, `--seconds` worth of events each; one line per shape and rate:
  429s as a share of all requests (target <= 10%) and throughput as a share of the
  limit (target >= 80%), throughput being accepted requests per second from the sink's
  first request to its last, so that the replay's start-up is not counted;
- memory: peak RSS of a clean replay of 100,000 and of 300,000 events (`--memory-events`;
  flat: what the delivery holds is bounded, not the input).

Every condition checks that each event arrived exactly once (the sink counts a
messageId only when it answered 200) and that no signature was bad. Throughput is
events per second of wall time, process start to exit. One event per request, as
Command AI's webhook takes them.

    python benchmarks/delivery.py                    # 20,000 events (rate limit: 3,000)
    python benchmarks/delivery.py --events 5000 --no-memory
    python benchmarks/delivery.py --only faults latency
    python benchmarks/delivery.py --only shapes --shapes bucket-1s no-hint --rates 200
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The limiter shapes live with the tests' fault server, at the repository's root.
from tests.fault_server import SHAPES, Limiter, shape

SECRET = "whsec_benchmark_0123456789"
FAULT_KINDS = ("500", "503", "429", "drop", "slow")


# ---------------------------------------------------------------- the sink (own process)


class Sink:
    def __init__(
        self,
        faults: float,
        latency: float,
        rate: float | None,
        slow: float,
        seed: int,
        limit: str = "",
    ) -> None:
        self.faults = faults
        self.slow = slow
        self.latency = latency
        self.rate = rate
        self.burst = max(1.0, (rate or 0) / 10)
        self.tokens = self.burst
        self.refilled = time.monotonic()
        self.rng = random.Random(seed)
        self.ids: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.bad_signatures = 0
        # A shaped limit instead of the token bucket above: "name:rate".
        self.limiter = (
            Limiter(shape(limit.split(":")[0], float(limit.split(":")[1]))) if limit else None
        )
        self.headers = b""  # the shaped limit's headers for the answer being made
        self.first = self.last = 0.0  # the first request's arrival, the last 200's answer
        self.timeline: Counter[tuple[int, str]] = Counter()  # (quarter second, status)

    def fault(self) -> str | None:
        if self.limiter is not None:
            passed, headers = self.limiter.admit()
            self.headers = b"".join(
                b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items()
            )
            if not passed:
                return "429"
        if self.rate is not None:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            if self.tokens < 1:
                return "429"
            self.tokens -= 1
        if self.faults and self.rng.random() < self.faults:
            return self.rng.choice(FAULT_KINDS)
        return None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    if b":" in line:
                        name, value = line.split(b":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                if method == b"GET" and path == b"/stats":
                    self.reply(writer, 200, json.dumps(self.stats()).encode())
                    await writer.drain()
                    continue
                if not self.first:
                    self.first = time.monotonic()
                fault = self.fault()
                quarter = int((time.monotonic() - self.first) * 4)
                self.timeline[quarter, fault or "200"] += 1
                if self.latency:
                    await asyncio.sleep(self.latency)
                if fault == "drop":
                    self.statuses["drop"] += 1
                    writer.close()
                    return
                if fault == "slow":
                    await asyncio.sleep(self.slow)
                    fault = None
                if fault is not None:
                    self.statuses[fault] += 1
                    extra = b"Retry-After: 1\r\n" if fault == "429" else b""
                    if self.limiter is not None:
                        extra = self.headers
                    self.reply(writer, int(fault), b'{"message":"injected"}', extra)
                    await writer.drain()
                    continue
                expected = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
                if headers.get(b"x-signature", b"").decode() != expected:
                    self.bad_signatures += 1
                    self.statuses["401"] += 1
                    self.reply(writer, 401, b'{"message":"bad signature"}')
                    await writer.drain()
                    continue
                self.ids[str(json.loads(body).get("messageId"))] += 1
                self.statuses["200"] += 1
                self.last = time.monotonic()
                self.reply(writer, 200, b'{"success":true}', self.headers)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    @staticmethod
    def reply(writer: asyncio.StreamWriter, code: int, body: bytes, extra: bytes = b"") -> None:
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (code, len(body), extra, body)
        )

    def stats(self) -> dict[str, Any]:
        return {
            "delivered": sum(self.ids.values()),
            "unique": len(self.ids),
            "bad_signatures": self.bad_signatures,
            "statuses": dict(self.statuses),
            "busy_s": self.last - self.first,
            "timeline": [[q, code, n] for (q, code), n in sorted(self.timeline.items())],
        }


async def _sink_main(
    faults: float, latency: float, rate: float | None, slow: float, limit: str
) -> None:
    sink = Sink(faults, latency, rate, slow, seed=14, limit=limit)
    server = await asyncio.start_server(sink.serve, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class SinkProcess:
    def __init__(
        self,
        faults: float = 0.0,
        latency: float = 0.0,
        rate: float | None = None,
        slow: float = 1.0,
        limit: str = "",
    ) -> None:
        argv = [sys.executable, __file__, "--serve"]
        argv += [str(faults), str(latency), str(rate or 0), str(slow), limit]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/stats", timeout=30) as answer:
            return dict(json.loads(answer.read()))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------- the sender


def write_events(path: Path, count: int) -> None:
    with open(path, "w") as out:
        for n in range(count):
            event = {
                "type": "identify",
                "userId": f"user_{n % 5000:05d}",
                "messageId": f"bench-{n:08d}",
                "timestamp": "2025-06-01T12:00:00.000Z",
                "traits": {"plan": ("free", "pro", "team")[n % 3], "seats": n % 40},
                "context": {"ip": "10.0.0.1", "library": {"name": "analytics.js"}},
            }
            out.write(json.dumps(event) + "\n")


def replay(
    source: Path, count: int, env: dict[str, str], sink: SinkProcess, extra: list[str]
) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "cmdai_cli",
        "replay",
        str(source),
        "--to",
        "webhook",
        "--url",
        sink.url + "/hook",
        "--json",
        *extra,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"replay exited {proc.returncode}: {err.decode()[-500:]}")
    summary = json.loads(out)
    stats = sink.stats()
    if stats["delivered"] != count or stats["unique"] != count or stats["bad_signatures"]:
        sys.exit(f"sink saw {stats}; want {count} events once each")
    requests = sum(stats["statuses"].values())
    return {
        "elapsed": elapsed,
        "rate": count / elapsed,
        "summary": summary,
        "stats": stats,
        "requests": requests,
    }


def peak_rss(source: Path, env: dict[str, str], sink: SinkProcess) -> int:
    argv = [sys.executable, "-m", "cmdai_cli", "replay", str(source), "--to", "webhook"]
    argv += ["--url", sink.url + "/hook", "--json"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("the memory run failed")
    return int(usage.ru_maxrss)


def shapes_matrix(base: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    """One replay per shape and rate; one line each, and how many met both targets."""
    print(f"\nshapes: {args.seconds:g} s of events at each rate; targets: 429s <= 10%, >= 80%")
    passed = total = 0
    for rate in args.rates:
        n = int(rate * args.seconds)
        path = base / f"shapes-{n}.ndjson"
        if not path.exists():
            write_events(path, n)
        for name in args.shapes:
            sink = SinkProcess(limit=f"{name}:{rate:g}")
            try:
                result = replay(path, n, env, sink, list(args.replay_args))
            finally:
                sink.close()
            statuses = result["stats"]["statuses"]
            share = statuses.get("429", 0) / result["requests"]
            busy = max(result["stats"]["busy_s"], 1e-9)
            of_limit = (n / busy) / rate
            ok = share <= 0.10 and of_limit >= 0.80
            passed += ok
            total += 1
            print(
                f"{name:17} {rate:6,.0f}/s  429s {share:6.1%}  throughput {of_limit:5.2f} "
                f"of the limit ({n / busy:7,.0f}/s; {result['rate']:6,.0f}/s with start-up)  "
                f"{'pass' if ok else 'FAIL'}",
                flush=True,
            )
            if args.timeline:
                quarters: dict[int, Counter[str]] = {}
                for q, code, count in result["stats"]["timeline"]:
                    quarters.setdefault(q, Counter())[code] += count
                print(
                    "    "
                    + " ".join(
                        f"{q / 4:g}:{c['200']}/{c['429']}" for q, c in sorted(quarters.items())
                    )
                )
    print(f"shapes: {passed} of {total} met both targets")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--limited-events", type=int, default=3_000)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-events", type=int, default=100_000)
    parser.add_argument("--slow", type=float, default=1.0, help="seconds a slow answer takes")
    parser.add_argument(
        "replay_args", nargs="*", help="more options for cmdai replay (after --)", default=[]
    )
    parser.add_argument(
        "--only",
        nargs="*",
        choices=("clean", "faults", "latency", "limit", "shapes"),
        default=None,
    )
    parser.add_argument("--shapes", nargs="*", choices=tuple(SHAPES), default=list(SHAPES))
    parser.add_argument("--rates", nargs="*", type=float, default=[100.0, 200.0, 1000.0])
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="events per shape: this many seconds' worth"
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="shapes: print accepted/429 per quarter second of each run",
    )
    args = parser.parse_args()
    only = set(args.only or ("clean", "faults", "latency", "limit", "shapes"))
    if "faults" in only:
        only.add("clean")
    count = args.events
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {
            **os.environ,
            "CMDAI_WEBHOOK_SHARED_SECRET": SECRET,
            "CMDAI_STATE_DIR": str(base / "state"),
            "CMDAI_CONFIG_DIR": str(base / "config"),
            "PYTHONPYCACHEPREFIX": str(base / "pycache"),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        source = base / "events.ndjson"
        if only & {"clean", "faults", "latency"}:
            write_events(source, count)
        if only & {"clean", "faults", "latency"}:
            print(f"events: {count:,} single-event webhook requests; sink: asyncio, own process")
        results: dict[str, dict[str, Any]] = {}
        conditions = {
            "clean": ({}, count, source),
            "faults": ({"faults": 0.10, "slow": args.slow}, count, source),
            "latency": ({"latency": 0.05}, count, source),
            "limit": ({"rate": 200.0}, args.limited_events, None),
        }
        for name, (sink_args, n, path) in conditions.items():
            if name not in only:
                continue
            if path is None:
                path = base / f"{name}.ndjson"
                write_events(path, n)
            sink = SinkProcess(**sink_args)
            try:
                result = replay(path, n, env, sink, list(args.replay_args))
            finally:
                sink.close()
            results[name] = result
            s = result["summary"]
            statuses = result["stats"]["statuses"]
            print(
                f"{name:8} {result['rate']:7,.0f} events/s  {n:,} in {result['elapsed']:.1f} s; "
                f"{result['requests']:,} requests {dict(sorted(statuses.items()))}; "
                f"retries {s['retries']}, max in flight {s.get('max_in_flight', '-')}, "
                f"retry wait {s.get('retry_wait_s', 0):.0f} s",
                flush=True,
            )
        print()
        if "clean" in results and "faults" in results:
            ratio = results["faults"]["rate"] / results["clean"]["rate"]
            print(f"faults / clean: {ratio:.2f} (target: median of 5 runs >= 0.55, none < 0.50)")
        if "latency" in results:
            print(f"50 ms latency: {results['latency']['rate']:,.0f} events/s (target >= 1,000)")
        if "limit" in results:
            r = results["limit"]
            share = r["stats"]["statuses"].get("429", 0) / r["requests"]
            print(
                f"rate limit 200/s: {r['rate']:,.0f} events/s (target >= 160), "
                f"429s {share:.1%} of requests (target <= 10%)"
            )
        if "shapes" in only:
            shapes_matrix(base, env, args)
        if not args.no_memory:
            small_n = args.memory_events
            small, big = base / "memory-1x.ndjson", base / "memory-3x.ndjson"
            write_events(small, small_n)
            write_events(big, 3 * small_n)
            sink = SinkProcess()
            try:
                small_rss = peak_rss(small, env, sink)
                big_rss = peak_rss(big, env, sink)
            finally:
                sink.close()
            print(
                f"memory: peak RSS {small_rss / 1024:.0f} MB at {small_n:,} events, "
                f"{big_rss / 1024:.0f} MB at {3 * small_n:,}"
            )


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--serve":
        faults, latency, rate, slow = (float(x) for x in sys.argv[2:6])
        asyncio.run(_sink_main(faults, latency, rate or None, slow, sys.argv[6]))
    else:
        main()
