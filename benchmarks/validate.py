"""Benchmark: `cmdai validate` against a plain jsonschema script, in the same run.

Generates 200,000 mixed events (by default): Command AI's catalogue events as its SDK
sends them, about 4% of them breaking the built-in plan (a wrong type, a missing
property, an unplanned name), and page events from the rest of the site, which no rule
covers. Writes the built-in plan to a file, then times

  - `cmdai --json validate --plan plan.json` (fastjsonschema first, jsonschema only for
    the events it refuses), and
  - a plain script: `json.loads` per line, and for each event `iter_errors` of
    jsonschema's Draft7Validator for its rule, built once per rule,

checks that both find violations in exactly the same events, and prints events per
second for each and the ratio (target: at least 3x). Peak memory (max RSS) of cmdai
is measured on a quarter of the input and on all of it: it should not grow with the
input. `--memory` adds a run over 5x the input.

    python benchmarks/validate.py
    python benchmarks/validate.py --memory
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

from cmdai_cli import catalogue, plans

BASELINE = r"""
import json, sys
from jsonschema import Draft7Validator

plan = json.load(open(sys.argv[1]))
track, other = {}, {}
for rule in plan["rules"]:
    validator = Draft7Validator(rule["jsonSchema"])
    if rule["type"] == "TRACK":
        track[rule["key"]] = validator
    else:
        other[rule["type"].lower()] = validator
out = sys.stdout
for index, line in enumerate(sys.stdin):
    event = json.loads(line)
    kind = event.get("type")
    if kind == "track":
        validator = track.get(event.get("event"))
        if validator is None:
            out.write('{"index": %d, "errors": 1}\n' % index)
            continue
    else:
        validator = other.get(kind)
        if validator is None:
            continue
    errors = list(validator.iter_errors(event))
    if errors:
        out.write('{"index": %d, "errors": %d}\n' % (index, len(errors)))
"""

PAGES = ["/", "/pricing", "/docs/getting-started", "/settings/billing", "/blog/launch"]
AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124.0"


def make_event(rng: random.Random, n: int, specs: list[catalogue.EventSpec]) -> dict[str, object]:
    user = f"user_{rng.randrange(50_000):05d}"
    if rng.random() < 0.15:
        event: dict[str, object] = {
            "type": "page",
            "name": "Docs",
            "userId": user,
            "properties": {"path": rng.choice(PAGES), "title": "Docs", "url": "x"},
        }
    else:
        spec = rng.choice(specs)
        event = catalogue.build_message(spec, user_id=user, message_id=f"msg-{n:09d}")
        broken = rng.random()
        payload = event.get("properties") or event.get("traits")
        assert isinstance(payload, dict)
        if broken < 0.015:
            payload["inputText" if spec.segment_type == "track" else "userAttributes"] = 7
        elif broken < 0.025 and spec.segment_type == "track":
            del payload["type"]
        elif broken < 0.04 and spec.segment_type == "track":
            event["event"] = f"{spec.name} v2"
    event["timestamp"] = f"2025-05-{1 + n % 28:02d}T12:{n % 60:02d}:{n * 7 % 60:02d}.000Z"
    event["context"] = {
        "ip": f"10.{n % 256}.{n * 3 % 256}.{n * 7 % 256}",
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "userAgent": AGENT,
    }
    return event


def write_corpus(path: Path, count: int, seed: int = 11) -> int:
    rng = random.Random(seed)
    specs = list(catalogue.events())
    return write_ndjson(path, (make_event(rng, n, specs) for n in range(count)))


def run(argv: list[str], stdin: Path, stdout: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS in MiB of one process; exits unless it ran to the end."""
    elapsed, rss, code = run_process(argv, stdin, stdout)
    # Both exit 1 or write violations when the input breaks the plan, as it does here.
    if code not in (0, 1):
        sys.exit(f"{argv[0]} exited with {code}")
    return elapsed, rss


def indexes(path: Path) -> set[int]:
    found = set()
    with path.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            if "index" in record:
                found.add(record["index"])
    return found


def cmdai_argv(plan: Path) -> list[str]:
    found = shutil.which("cmdai") or str(Path(sys.executable).with_name("cmdai"))
    return [found, "--json", "validate", "--plan", str(plan)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs; best is kept")
    parser.add_argument("--memory", action="store_true", help="also a run over 5x the input")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cmdai-bench-") as tmp:
        work = Path(tmp)
        corpus = work / "events.ndjson"
        size = write_corpus(corpus, args.events)
        quarter = work / "quarter.ndjson"
        write_corpus(quarter, args.events // 4)
        plan = work / "plan.json"
        plans.save_plan(plans.builtin_plan(), plan)
        script = work / "baseline.py"
        script.write_text(BASELINE)
        print(f"corpus: {args.events} events, {size / 1e6:.1f} MB; plan: built-in")

        ours_out, theirs_out = work / "cmdai.ndjson", work / "baseline.ndjson"
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(run(cmdai_argv(plan), corpus, ours_out))
            theirs.append(run([sys.executable, str(script), str(plan)], corpus, theirs_out))
        print("runs (s): cmdai " + ", ".join(f"{t:.2f}" for t, _ in ours))
        print("runs (s): jsonschema script " + ", ".join(f"{t:.2f}" for t, _ in theirs))
        ours_time, theirs_time = min(t for t, _ in ours), min(t for t, _ in theirs)
        ours_rss, theirs_rss = max(r for _, r in ours), max(r for _, r in theirs)
        print(
            f"cmdai validate:    {ours_time:6.2f} s  {args.events / ours_time:10,.0f} events/s"
            f"  peak RSS {ours_rss} MiB"
        )
        print(
            f"jsonschema script: {theirs_time:6.2f} s  {args.events / theirs_time:10,.0f} "
            f"events/s  peak RSS {theirs_rss} MiB"
        )
        a, b = indexes(ours_out), indexes(theirs_out)
        if a != b:
            sys.exit(f"the two disagree on {len(a ^ b)} events, e.g. {sorted(a ^ b)[:5]}")
        print(f"both find violations in the same {len(a)} events")
        ratio = theirs_time / ours_time
        print(
            f"ratio: cmdai is {ratio:.2f}x the jsonschema script's throughput "
            f"(target: at least 3x): {'met' if ratio >= 3 else 'NOT met'}"
        )

        _, q_rss = run(cmdai_argv(plan), quarter, Path(os.devnull))
        rows = [(args.events // 4, q_rss), (args.events, ours_rss)]
        if args.memory:
            big = work / "big.ndjson"
            with big.open("wb") as dst:
                for _ in range(5):
                    with corpus.open("rb") as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
            rows.append((args.events * 5, run(cmdai_argv(plan), big, Path(os.devnull))[1]))
        for count, rss in rows:
            print(f"memory: {count:9,} events -> peak RSS {rss} MiB")
        growth = (rows[-1][1] - rows[0][1]) / rows[0][1] * 100
        print(
            f"memory: growth {growth:+.1f}% from the smallest input to the largest "
            f"(target: within 10%): {'met' if abs(growth) <= 10 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
