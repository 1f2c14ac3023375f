"""What the benchmarks share: the environment cmdai runs in, one timed process, a corpus.

Imported by the scripts beside it (`python benchmarks/x.py` puts this folder first on
sys.path).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

# Byte-code caches, as an installed package has them: with PYTHONDONTWRITEBYTECODE set,
# every cmdai run would compile its modules again. Best-of-N keeps a run with them warm.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "cmdai-bench-pycache")


def run_process(argv: list[str], stdin: Path, stdout: Path) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in MiB (wait4's ru_maxrss) and exit status of one process."""
    with stdin.open("rb") as src, stdout.open("wb") as dst:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=src, stdout=dst, stderr=subprocess.DEVNULL, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss // 1024, os.waitstatus_to_exitcode(status)


def write_ndjson(path: Path, records: Iterable[Any]) -> int:
    """Write `records` one JSON line each, in large blocks; the bytes written."""
    size = 0
    with path.open("wb") as handle:
        parts: list[bytes] = []
        for record in records:
            line = orjson.dumps(record) + b"\n"
            size += len(line)
            parts.append(line)
            if len(parts) >= 10_000:
                handle.write(b"".join(parts))
                parts = []
        handle.write(b"".join(parts))
    return size
