"""Benchmark: `cmdai map-payload` against an equivalent jq program, in the same run.

Generates a corpus of mixed identify/track/page events (200,000 by default, about
85 MB of NDJSON), runs both over it with output to a file, checks that every output
record agrees, and prints events per second for each and the ratio. Peak memory
(max RSS) of each process is measured with wait4.

    python benchmarks/map_payload.py                 # throughput against jq
    python benchmarks/map_payload.py --memory        # also: 100 MB vs 1 GB input

jq must be on PATH (Debian: apt-get install -y jq); without it only cmdai is timed and
the script says so.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import run_process, write_ndjson

JQ_PROGRAM = r"""
def record($i):
  if (.userId == null or .userId == "") then
    {index: $i, userId: null, properties: {}, ignored: "no userId"}
  else
    {index: $i, userId: .userId,
     properties: (
       (if (.traits | type) == "object" then .traits else {} end)
       + (if (.user_property_event | type) == "string" and .user_property_event != ""
          then {(.user_property_event): true} else {} end)
       + (with_entries(select((.key | startswith("user_property.")) and (.key | length) > 14)
                       | .key |= .[14:]))
     ),
     ignored: null}
  end;
foreach inputs as $e (-1; . + 1; . as $i | $e | record($i))
"""

PLANS = ["free", "starter", "pro", "enterprise"]
EVENTS = ["Opened", "Closed", "Command Execution", "Nudge Shown", "Nudge Clicked", "Signed Up"]
PAGES = ["/", "/pricing", "/docs/getting-started", "/settings/billing", "/blog/launch"]
AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124.0"


def make_event(rng: random.Random, n: int) -> dict[str, object]:
    user = f"user_{rng.randrange(50_000):05d}"
    kind = rng.choices(["identify", "track", "page"], weights=[35, 45, 20])[0]
    event: dict[str, object] = {
        "type": kind,
        "messageId": f"msg-{n:09d}-{rng.getrandbits(32):08x}",
        "timestamp": f"2025-05-{1 + n % 28:02d}T12:{n % 60:02d}:{n * 7 % 60:02d}.000Z",
        "anonymousId": f"anon-{rng.getrandbits(48):012x}",
        "context": {
            "ip": f"10.{n % 256}.{n * 3 % 256}.{n * 7 % 256}",
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "userAgent": AGENT,
        },
    }
    if rng.random() < 0.9:
        event["userId"] = user
    if kind == "identify":
        event["traits"] = {
            "email": f"{user}@example.com",
            "plan": rng.choice(PLANS),
            "seats": rng.randrange(1, 500),
            "trial": rng.random() < 0.3,
        }
    elif kind == "track":
        event["event"] = rng.choice(EVENTS)
        event["properties"] = {"type": "opened", "trigger": "keyboard", "session": n % 977}
        if rng.random() < 0.05:
            event["user_property_event"] = "extension installed"
            event["user_property.plan"] = rng.choice(PLANS)
    else:
        event["name"] = "Docs"
        event["properties"] = {"path": rng.choice(PAGES), "title": "Command AI", "url": "x"}
    return event


def write_corpus(path: Path, count: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    return write_ndjson(path, (make_event(rng, n) for n in range(count)))


run = run_process


def best_of(times: int, argv: list[str], stdin: Path, stdout: Path) -> tuple[float, int]:
    results = []
    for _ in range(times):
        elapsed, rss, code = run(argv, stdin, stdout)
        if code != 0:
            sys.exit(f"{argv[0]} exited with {code}")
        results.append((elapsed, rss))
    return min(r[0] for r in results), max(r[1] for r in results)


def agree(ours: Path, theirs: Path) -> int:
    """The number of records, after checking every one is the same in both outputs."""
    count = 0
    with ours.open("rb") as a, theirs.open("rb") as b:
        for count, (line_a, line_b) in enumerate(zip(a, b, strict=True), start=1):
            if orjson.loads(line_a) != orjson.loads(line_b):
                sys.exit(f"outputs differ at record {count - 1}:\n{line_a!r}\n{line_b!r}")
    return count


def cmdai_argv() -> list[str]:
    found = shutil.which("cmdai") or str(Path(sys.executable).with_name("cmdai"))
    return [found, "map-payload", "--format", "ndjson"]


def memory_check(work: Path, corpus: Path, corpus_bytes: int) -> None:
    small = work / "small.ndjson"
    big = work / "big.ndjson"
    repeat_small = max(1, round(100e6 / corpus_bytes))
    repeat_big = max(2, round(1e9 / corpus_bytes))
    for target, repeat in ((small, repeat_small), (big, repeat_big)):
        with target.open("wb") as dst:
            for _ in range(repeat):
                with corpus.open("rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
    rows = []
    for target in (small, big):
        elapsed, rss, code = run(cmdai_argv(), target, Path(os.devnull))
        if code != 0:
            sys.exit(f"cmdai exited with {code} on {target.name}")
        rows.append((target.stat().st_size, elapsed, rss))
        target.unlink()
    (s_bytes, s_time, s_rss), (b_bytes, b_time, b_rss) = rows
    print(f"memory: {s_bytes / 1e6:7.0f} MB input -> peak RSS {s_rss} MiB ({s_time:.1f} s)")
    print(f"memory: {b_bytes / 1e6:7.0f} MB input -> peak RSS {b_rss} MiB ({b_time:.1f} s)")
    growth = (b_rss - s_rss) / s_rss * 100
    ok = b_rss < 100 and abs(growth) <= 10
    print(
        f"memory: growth {growth:+.1f}% (target: under 100 MiB, within 10%): "
        f"{'met' if ok else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; best is kept")
    parser.add_argument("--memory", action="store_true", help="also compare 100 MB and 1 GB")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cmdai-bench-") as tmp:
        work = Path(tmp)
        corpus = work / "events.ndjson"
        size = write_corpus(corpus, args.events)
        print(f"corpus: {args.events} events, {size / 1e6:.1f} MB ({corpus})")

        ours = work / "cmdai.ndjson"
        ours_time, ours_rss = best_of(args.repeat, cmdai_argv(), corpus, ours)
        ours_rate = args.events / ours_time
        print(
            f"cmdai map-payload: {ours_time:6.2f} s  {ours_rate:10,.0f} events/s  "
            f"peak RSS {ours_rss} MiB"
        )

        jq = shutil.which("jq")
        if jq is None:
            print("jq: NOT INSTALLED -- no baseline, no ratio (apt-get install -y jq)")
        else:
            theirs = work / "jq.ndjson"
            jq_argv = [jq, "-n", "-c", JQ_PROGRAM]
            jq_time, jq_rss = best_of(args.repeat, jq_argv, corpus, theirs)
            jq_rate = args.events / jq_time
            print(
                f"jq (same rules):   {jq_time:6.2f} s  {jq_rate:10,.0f} events/s  "
                f"peak RSS {jq_rss} MiB"
            )
            checked = agree(ours, theirs)
            print(f"outputs agree on all {checked} records")
            ratio = ours_rate / jq_rate
            print(
                f"ratio: cmdai is {ratio:.2f}x jq's throughput (target: at least 4x): "
                f"{'met' if ratio >= 4 else 'NOT met'}"
            )
        if args.memory:
            memory_check(work, corpus, size)


if __name__ == "__main__":
    main()
