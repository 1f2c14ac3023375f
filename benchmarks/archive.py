"""Benchmark: a Segment S3 archive read from a loopback S3 server, and replay shards.

Builds an archive with Segment's layout (`segment-logs/{source}/{day}/*.gz`, gzip
NDJSON; by default 1,000,000 events over 4 days, 24 objects a day as Segment writes
about hourly) in moto's S3 server, started in this process on 127.0.0.1, and the same
objects on local disk (named relative to the working folder, so that the shards' split
of files is the same in every run). Then:

1. `cmdai map-payload` over the S3 prefix against the same files on local disk
   (target: S3 within 1.5x of local disk).
2. `cmdai replay --dry-run` (read, select, prepare; nothing sent) over the whole
   archive as one process, against `--shard auto/2` as two processes at once with
   JOB_COMPLETION_INDEX 0 and 1 (target: two shards at least 1.6x one process).
   Timed on local disk, where the loopback server takes no CPU from the shards, and
   on S3. Each shard's files_read is printed, to show the split.

Wall time, process start to exit, best of N alternating runs (3 by default); every
run's time is printed. Needs the test extra (moto[server], s3fs).

    python benchmarks/archive.py
    python benchmarks/archive.py --events 400000 --repeat 5
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import ENV
from map_payload import make_event  # this folder's corpus generator

DAY0 = datetime(2025, 5, 1, tzinfo=timezone.utc)
SOURCE = "Ab12Cd34"
BUCKET = "bench-archive"


def cmdai() -> str:
    return shutil.which("cmdai") or str(Path(sys.executable).with_name("cmdai"))


def build(local: Path, put: Callable[[str, bytes], None], events: int, days: int, files: int):
    """Write the archive under `local` and through `put(key, body)`; returns total bytes."""
    rng = random.Random(11)
    per_file = events // (days * files)
    total = 0
    n = 0
    for d in range(days):
        day = DAY0 + timedelta(days=d)
        folder = str(int(day.timestamp() * 1000))
        for f in range(files):
            lines = []
            for i in range(per_file):
                event = make_event(rng, n)
                when = day + timedelta(seconds=(f * per_file + i) * 86_000 // (files * per_file))
                event["timestamp"] = when.isoformat().replace("+00:00", "Z")
                event["receivedAt"] = event["timestamp"]
                lines.append(orjson.dumps(event))
                n += 1
            body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=6)
            name = f"{folder}/{int(when.timestamp() * 1000)}.{d:02d}{f:03d}.gz"
            key = f"segment-logs/{SOURCE}/{name}"
            path = local / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            put(key, body)
            total += len(body)
    return total


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr.decode()}")
    return elapsed


def shards(source: str, count: int, env: dict[str, str], cwd: Path) -> tuple[float, list[int]]:
    """Wall time of `count` shard processes run at once, and each one's files_read."""
    procs = []
    start = time.perf_counter()
    for k in range(count):
        argv = [cmdai(), "replay", source, "--to", "segment", "--dry-run", "--json"]
        if count > 1:
            argv += ["--shard", f"auto/{count}"]
        shard_env = {**env, "JOB_COMPLETION_INDEX": str(k)}
        procs.append(
            subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=shard_env, cwd=cwd
            )
        )
    files = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"a shard exited with {proc.returncode}: {err.decode()}")
        files.append(json.loads(out)["files_read"])
    return time.perf_counter() - start, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--files", type=int, default=24, help="objects per day")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; best is kept")
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with tempfile.TemporaryDirectory(prefix="cmdai-bench-") as tmp:
        work = Path(tmp)
        env = {
            **ENV,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(work / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CMDAI_CONFIG_DIR": str(work / "config"),
            "CMDAI_STATE_DIR": str(work / "state"),
        }
        import s3fs

        fs = s3fs.S3FileSystem(
            key="bench", secret="bench", client_kwargs={"endpoint_url": endpoint}
        )
        fs.mkdir(BUCKET)
        local = work / "disk"
        size = build(
            local,
            lambda key, body: fs.pipe(f"{BUCKET}/{key}", body),
            args.events,
            args.days,
            args.files,
        )
        objects = args.days * args.files
        print(f"archive: {args.events} events in {objects} objects, {size / 1e6:.1f} MB gzip")
        remote = f"s3://{BUCKET}/segment-logs/{SOURCE}/"
        on_disk = f"disk/segment-logs/{SOURCE}/*/*.gz"

        # 1. map-payload: S3 against local disk.
        mp = [cmdai(), "map-payload", "--format", "ndjson"]
        times: dict[str, list[float]] = {"disk": [], "s3": []}
        for _ in range(args.repeat):
            times["disk"].append(timed([*mp, on_disk], env, work))
            times["s3"].append(timed([*mp, remote], env, work))
        disk, s3 = min(times["disk"]), min(times["s3"])
        for name, runs in times.items():
            print(f"map-payload {name:4}: " + "  ".join(f"{t:6.2f}" for t in runs) + " s")
        print(
            f"map-payload: disk {disk:.2f} s ({args.events / disk:,.0f} events/s), "
            f"s3 {s3:.2f} s ({args.events / s3:,.0f} events/s): s3/disk = {s3 / disk:.2f}x "
            f"(target <= 1.5x: {'met' if s3 / disk <= 1.5 else 'NOT met'})"
        )

        # 2. replay shards: one process against two at once.
        for label, source in (("disk", on_disk), ("s3", remote)):
            one: list[float] = []
            two: list[float] = []
            split: list[int] = []
            for _ in range(args.repeat):
                one.append(shards(source, 1, env, work)[0])
                elapsed, split = shards(source, 2, env, work)
                two.append(elapsed)
            speedup = min(one) / min(two)
            print(f"replay {label:4} 1 process : " + "  ".join(f"{t:6.2f}" for t in one) + " s")
            print(f"replay {label:4} 2 shards  : " + "  ".join(f"{t:6.2f}" for t in two) + " s")
            print(
                f"replay {label}: 1 process {min(one):.2f} s, 2 shards {min(two):.2f} s "
                f"(files {split[0]} + {split[1]}): {speedup:.2f}x "
                f"(target >= 1.6x: {'met' if speedup >= 1.6 else 'NOT met'})"
            )
    server.stop()


if __name__ == "__main__":
    main()
