"""How long `cmdai expect` takes against a `cmdai listen` holding 100,000 messages.

Starts `cmdai listen` (its default --keep 100000), fills it through the Tracking API
with Command AI events from 500 users (as batches over one connection), then runs
`cmdai expect` as a process, the way CI runs it, for each case below, and prints the
best and the median of the runs' wall times (start-up included). Goal: under a second
for an expectation that names its event or user.

    python benchmarks/expect.py [--messages 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit


def fill(url: str, count: int) -> None:
    from cmdai_cli import catalogue

    kinds = ["opened", "closed", "command_execution", "nudge_shown", "no_results_for_query"]
    specs = [catalogue.lookup(kind) for kind in kinds]
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    sent = 0
    while sent < count:
        batch = []
        for n in range(sent, min(sent + 400, count)):
            spec = specs[n % len(specs)]
            assert spec is not None
            batch.append(catalogue.build_message(spec, user_id=f"user-{n % 500}"))
        conn.request("POST", "/v1/batch", body=json.dumps({"batch": batch}))
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        sent += len(batch)
    conn.close()


CASES = {
    "one event from one user, with a property": [
        "--event", "Command Execution", "--user-id", "user-7",
        "--property", "commandText=Invite teammate", "--min", "200",
    ],
    "a file of 4 expectations (one unmet: nearest messages)": ["--file", "{file}"],
    "--no-flagged": ["--no-flagged"],
    "every Opened event (20,000 moved)": ["--event", "Opened", "--min", "20000"],
    "--catalogue (every message checked against its schema)": ["--catalogue"],
}  # fmt: skip

EXPECTATIONS = """
[[expect]]
event = "Opened"
user_id = "user-0"
properties = { trigger = "keyboard" }

[[expect]]
event = "nudge_shown"
user_id = "user-3"
min = 100

[[expect]]
type = "identify"
max = 0

[[expect]]
event = "Closed"
user_id = "user-2"
properties = { inputText = "not this" }
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cmdai-bench-expect-"))
    ready = work / "collector.url"
    expectations = work / "expectations.toml"
    expectations.write_text(EXPECTATIONS)
    listen = subprocess.Popen(
        [sys.executable, "-m", "cmdai_cli", "listen", "--port", "0", "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if time.monotonic() > deadline or listen.poll() is not None:
                raise SystemExit("cmdai listen did not start")
            time.sleep(0.02)
        url = ready.read_text().strip()
        started = time.perf_counter()
        fill(url, args.messages)
        print(f"filled {args.messages} messages in {time.perf_counter() - started:.1f} s")
        print(f"cmdai expect, wall time of {args.runs} runs ({os.cpu_count()} CPUs):")
        for name, case in CASES.items():
            command = [sys.executable, "-m", "cmdai_cli", "expect", "--from", url]
            command += [part.replace("{file}", str(expectations)) for part in case]
            times = []
            for _ in range(args.runs):
                began = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                times.append(time.perf_counter() - began)
                if done.returncode not in (0, 1):
                    raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr}")
            verdict = done.stderr.strip().splitlines()[-1]
            print(
                f"  {name:<56} best {min(times):.3f} s  median {statistics.median(times):.3f} s"
                f"  ({verdict})"
            )
    finally:
        listen.terminate()
        listen.wait(10)


if __name__ == "__main__":
    main()
