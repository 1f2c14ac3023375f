"""Benchmark: `cmdai status` for a 24-hour window of 20 event names against the Public API
stand-in (tests/fake_public_api.py on loopback), against `cmdai --version` in the same run.

Each case runs as a fresh process, interleaved with the other; the median wall time of
each is shown, and the status run's ratio to the baseline.

    python benchmarks/status.py            # 10 runs of each
    python benchmarks/status.py --runs 30

Target: `cmdai status` (human view and --json) under 2 s each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import ENV

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_public_api import running  # noqa: E402

TARGET = 2.0
TOKEN = "bench-token"
WRITE_KEY = "bench-write-key"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cmdai = [sys.executable, "-m", "cmdai_cli"]
    with running(TOKEN) as api, tempfile.TemporaryDirectory() as config:
        api.seed_status(write_key=WRITE_KEY, names=20, buckets=24)
        env = {
            **ENV,
            "CMDAI_CONFIG_DIR": config,
            "CMDAI_PUBLIC_API_TOKEN": TOKEN,
            "CMDAI_API_HOST": api.url,
            "CMDAI_WRITE_KEY": WRITE_KEY,
            "CMDAI_ORG_ID": "org-1",
            "CMDAI_WEBHOOK_URL": "https://api.command.ai/hooks/o1",
            "COLUMNS": "80",
        }
        cases = {
            "cmdai --version (baseline)": [*cmdai, "--version"],
            "cmdai status --since 24h": [*cmdai, "status", "--since", "24h"],
            "cmdai status --since 24h --json": [*cmdai, "status", "--since", "24h", "--json"],
        }
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(args.runs):
            for label, argv in cases.items():
                start = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True)
                times[label].append(time.perf_counter() - start)
                if done.returncode != 0:
                    sys.stderr.write(done.stderr.decode())
                    return 1
    baseline = statistics.median(times["cmdai --version (baseline)"])
    ok = True
    print(f"{'case':<36} {'median s':>9} {'max s':>7} {'x baseline':>11}")
    for label, found in times.items():
        median = statistics.median(found)
        print(f"{label:<36} {median:9.3f} {max(found):7.3f} {median / baseline:11.1f}")
        if label.startswith("cmdai status") and median >= TARGET:
            ok = False
    print(f"target: each status run under {TARGET:g} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
