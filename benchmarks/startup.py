"""Benchmark: how long `cmdai` takes to start, against a bare `import typer`, in one run.

Every Tab press runs `cmdai`, so it must start about as fast as Python can import
typer. Each case runs as a fresh process, interleaved with the others so that machine
noise touches all alike; the median wall time of each is compared with the baseline.

    python benchmarks/startup.py            # 30 runs of each
    python benchmarks/startup.py --runs 100

Target: `cmdai --help`, `cmdai --version` and completing a command name each at most
1.5x the baseline. The rows after those are shown for information.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.5


def cmdai_argv() -> list[str]:
    script = Path(sys.executable).with_name("cmdai")
    if script.exists():
        return [str(script)]
    found = shutil.which("cmdai")
    return [found] if found else [sys.executable, "-m", "cmdai_cli"]


def cases() -> list[tuple[str, list[str], dict[str, str], bool]]:
    """(label, argv, extra environment, counts against the target)."""
    cmdai = cmdai_argv()
    bash = {"_CMDAI_COMPLETE": "complete_bash"}
    return [
        ('python -c "import typer"', [sys.executable, "-c", "import typer"], {}, False),
        ("cmdai --help", [*cmdai, "--help"], {}, True),
        ("cmdai --version", [*cmdai, "--version"], {}, True),
        (
            "complete: cmdai <TAB>",
            cmdai,
            {**bash, "COMP_WORDS": "cmdai ", "COMP_CWORD": "1"},
            True,
        ),
        (
            "complete: cmdai send-test --<TAB>",
            cmdai,
            {**bash, "COMP_WORDS": "cmdai send-test --", "COMP_CWORD": "2"},
            False,
        ),
        (
            "complete: cmdai send-test --event <TAB>",
            cmdai,
            {**bash, "COMP_WORDS": "cmdai send-test --event ", "COMP_CWORD": "3"},
            False,
        ),
        ("cmdai send-test --help", [*cmdai, "send-test", "--help"], {}, False),
    ]


def run_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[:500]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="cmdai start-up time against import typer")
    parser.add_argument("--runs", type=int, default=30, help="runs of each case (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base_env = {**os.environ, "CMDAI_CONFIG_DIR": tmp, "NO_COLOR": "1", "COLUMNS": "100"}
        base_env.pop("_CMDAI_COMPLETE", None)
        # Byte-code caches for both sides, as an installed package has them, kept out of
        # the source tree: the warm-up run below writes them.
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        base_env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        table = cases()
        times: dict[str, list[float]] = {label: [] for label, *_ in table}
        for _label, argv, extra, _ in table:  # warm the file cache and .pyc files
            run_once(argv, {**base_env, **extra})
        for _ in range(max(1, args.runs)):
            for label, argv, extra, _ in table:
                times[label].append(run_once(argv, {**base_env, **extra}))
    baseline_label = table[0][0]
    baseline = statistics.median(times[baseline_label])
    width = max(len(label) for label in times)
    print(f"{args.runs} runs each; median wall time; baseline {baseline_label}")
    print(f"{'case':<{width}}  {'median':>8}  {'min':>8}  {'ratio':>6}")
    worst = 0.0
    for label, _, _, counted in table:
        median = statistics.median(times[label])
        ratio = median / baseline
        if counted:
            worst = max(worst, ratio)
        mark = "" if label == baseline_label else ("  (target)" if counted else "  (info)")
        print(
            f"{label:<{width}}  {median * 1000:7.1f}ms  {min(times[label]) * 1000:7.1f}ms  "
            f"{ratio:5.2f}x{mark}"
        )
    verdict = "within" if worst <= TARGET else "OVER"
    print(f"worst target ratio {worst:.2f}x: {verdict} the {TARGET}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
