"""Benchmark: `cmdai trigger day --users 10000 --out FILE` against orjson writing the same
events, prebuilt, to a file, in the same run.

Times, best of `--repeat`:

  - the trigger core, in-process: load and check the scenario against the built-in plan,
    make every user, session and event, write NDJSON (what the command does, start-up
    of the interpreter aside);
  - the baseline: the same events, read back as dicts beforehand, dumped with orjson a
    line each and written in the same blocks, so its cost is the writing alone;
  - the whole command as a process (`python -m cmdai_cli trigger ...`), start-up included.

Prints events per second (wall clock, and per CPU second, steadier on a shared machine)
for each and the trigger's ratio to the baseline; the goal is at least 100,000 events a
second for the trigger core.

    python benchmarks/trigger.py
    python benchmarks/trigger.py --users 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import run_process

from cmdai_cli.scenarios.run import TriggerRequest, trigger, write_ndjson

GOAL = 100_000
START = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--scenario", default="day")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cmdai-bench-trigger-") as scratch:
        out = Path(scratch) / "events.ndjson"
        request = TriggerRequest(
            scenarios=(args.scenario,), users=args.users, seed=1, start=START, out=str(out)
        )
        best = cpu = float("inf")
        count = 0
        for _ in range(args.repeat):
            started, used = time.perf_counter(), time.process_time()
            result = trigger(request)
            best = min(best, time.perf_counter() - started)
            cpu = min(cpu, time.process_time() - used)
            count = result.generated
        made = out.read_bytes()
        events = [orjson.loads(line) for line in made.splitlines()]
        assert len(events) == count

        baseline = base_cpu = float("inf")
        copy = Path(scratch) / "baseline.ndjson"
        for _ in range(args.repeat):
            started, used = time.perf_counter(), time.process_time()
            write_ndjson(iter(events), str(copy))
            baseline = min(baseline, time.perf_counter() - started)
            base_cpu = min(base_cpu, time.process_time() - used)
        assert copy.read_bytes() == made  # the same bytes: only the making differs

        argv = [sys.executable, "-m", "cmdai_cli", "trigger", args.scenario,
                "--users", str(args.users), "--seed", "1", "--start", START.isoformat(),
                "--out", str(Path(scratch) / "process.ndjson")]  # fmt: skip
        process, _, code = run_process(argv, Path("/dev/null"), Path(scratch) / "stdout")
        assert code == 0, "cmdai trigger failed"

    rate = count / best
    base_rate = count / baseline
    print(f"events: {count:,} ({args.scenario}, {args.users:,} users, {len(made) / 1e6:.1f} MB)")
    print(
        f"trigger core:                 {best:6.3f} s  {rate:12,.0f} events/s"
        f"  ({count / cpu:,.0f} per CPU second)"
    )
    print(
        f"baseline (orjson, prebuilt):  {baseline:6.3f} s  {base_rate:12,.0f} events/s"
        f"  ({count / base_cpu:,.0f} per CPU second)"
    )
    print(f"cmdai trigger (process):      {process:6.3f} s  {count / process:12,.0f} events/s")
    print(f"ratio trigger/baseline: {rate / base_rate:.2f}  (goal: {GOAL:,} events/s: "
          f"{'met' if rate >= GOAL else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
