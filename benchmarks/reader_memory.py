"""Peak memory of `cmdai map-payload` over hostile inputs: bombs, huge lines, a 1 GB array.

Each case runs `python -m cmdai_cli map-payload --on-error skip` in its own process,
output to /dev/null, and reports its peak RSS (wait4's ru_maxrss), wall time, exit code
and the last line of stderr. The inputs are generated in a temporary directory; the
1 GB JSON array (all on one line) is streamed into stdin by a generator process, so it
never touches the disk.

    python benchmarks/reader_memory.py                       # this tree
    python benchmarks/reader_memory.py --src /path/to/src    # another tree's code
    python benchmarks/reader_memory.py --array-gb 0.1        # a smaller array

Every run is capped at 3 GiB of address space (--cap-mb), so that a reader without
bounds ends in a MemoryError rather than taking the machine's memory. Goal (issue #12):
under 200 MB for every case.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENT = (
    b'{"type":"track","event":"Opened","userId":"user_00042","messageId":"m-%09d",'
    b'"properties":{"plan":"pro","seats":12},"timestamp":"2025-05-01T12:00:00.000Z"}'
)


def gzip_stream(
    path: Path, pieces: int, piece: bytes, head: bytes = b"", tail: bytes = b""
) -> None:
    """A gzip file of `head`, `piece` repeated `pieces` times, then `tail`, written in pieces."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(head)
        for _ in range(pieces):
            out.write(piece)
        out.write(tail)


def make_inputs(where: Path) -> dict[str, Path]:
    mb = 1 << 20
    cases: dict[str, Path] = {}
    # One line that inflates to 300 MB: a huge string inside an event.
    cases["gzip, one 300 MB line"] = where / "line-bomb.ndjson.gz"
    gzip_stream(
        cases["gzip, one 300 MB line"], 300, b"x" * mb, head=b'{"type":"track","p":"', tail=b'"}\n'
    )
    cases["gzip, 444 MB of newlines"] = where / "newlines.gz"
    gzip_stream(cases["gzip, 444 MB of newlines"], 444, b"\n" * mb)
    cases["gzip, 444 MB of spaces"] = where / "spaces.gz"
    gzip_stream(cases["gzip, 444 MB of spaces"], 444, b" " * mb)
    single = where / "single-line.ndjson"
    with single.open("wb") as out:
        out.write(b'{"type":"track","properties":{"list":[')
        out.write(b",".join([b'{"k":1}'] * (70 * mb // 8)))
        out.write(b"]}}\n")
        out.write(EVENT % 1 + b"\n")
    cases["70 MB single-line NDJSON"] = single
    return cases


def array_generator(gigabytes: float) -> list[str]:
    """A command that prints a one-line JSON array of about `gigabytes` GB of events."""
    count = int(gigabytes * (1 << 30) / (len(EVENT % 0) + 1))
    program = (
        "import sys\n"
        f"event = {EVENT!r}\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'[')\n"
        f"for start in range(0, {count}, 10000):\n"
        f"    stop = min(start + 10000, {count})\n"
        "    items = b','.join(event % i for i in range(start, stop))\n"
        "    out.write((b',' if start else b'') + items)\n"
        "out.write(b']')\n"
    )
    return [sys.executable, "-c", program]


def run(
    command: list[str], env: dict[str, str], cap_mb: int, stdin: int | None = None
) -> dict[str, object]:
    def cap() -> None:
        # Address space, not RSS: an unbounded reader fails here instead of on the host.
        limit = cap_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            preexec_fn=cap,  # only a setrlimit, before exec
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return {
        "peak_mb": usage.ru_maxrss / 1024,
        "seconds": time.perf_counter() - started,
        "exit": proc.returncode,
        "stderr": lines[-1][:110] if lines else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="run the code of this src/ directory instead")
    parser.add_argument("--array-gb", type=float, default=1.0, help="size of the JSON array")
    parser.add_argument(
        "--cap-mb", type=int, default=3072, help="address-space cap per run (default 3 GiB)"
    )
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    base = [sys.executable, "-m", "cmdai_cli", "map-payload", "--on-error", "skip"]
    base += ["--format", "ndjson"]
    with tempfile.TemporaryDirectory() as tmp:
        cases = make_inputs(Path(tmp))
        results = []
        for name, path in cases.items():
            results.append((name, run([*base, str(path)], env, args.cap_mb)))
        generator = subprocess.Popen(array_generator(args.array_gb), stdout=subprocess.PIPE)
        assert generator.stdout is not None
        name = f"{args.array_gb:g} GB JSON array on one line (stdin)"
        results.append((name, run([*base, "-"], env, args.cap_mb, stdin=generator.stdout.fileno())))
        generator.stdout.close()
        generator.wait()
    print(f"{'input':44} {'peak MB':>8} {'seconds':>8} {'exit':>4}  last stderr line")
    for name, result in results:
        print(
            f"{name:44} {result['peak_mb']:8.0f} {result['seconds']:8.1f} {result['exit']:>4}  "
            f"{result['stderr']}"
        )


if __name__ == "__main__":
    main()
