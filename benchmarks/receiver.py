"""How fast `cmdai listen` receives, against a do-nothing sink, from one Python SDK client.

Each round sends the same N Command AI track events through one
segment-analytics-python Client (default batching) to each target in turn and times
enqueue-to-flush. Every server runs in its own process so it does not share the GIL
with the client. Baseline: a stdlib HTTP server that reads each body and answers 200.

    python benchmarks/receiver.py [--messages 20000] [--rounds 5] [--compare SRC]

--compare SRC adds the same two cmdai targets run from another tree's src/ directory
(for example the main branch's), so that before and after are measured in one run.
--forward adds `cmdai listen --json --out --forward-to SINK`, forwarding every request
to a second do-nothing sink on loopback (goal: within 10% of `cmdai listen --json
--out`); it checks that the sink got every message.

Prints messages/second per target and the ratio to the baseline (goal: >= 0.90).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Messages forwarded to a sink started with --serve-sink COUNTS: one line per request.
    counts: str | None = None

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.counts is not None:
            # Counted without decoding: this sink shares the machine with what is measured.
            found = data.count(b'"messageId"')
            with open(self.counts, "a") as handle:
                handle.write(f"{found}\n")
        body = b'{"success": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve_sink(counts: str | None = None) -> None:
    _Sink.counts = counts
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    print(json.dumps({"listening": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    server.serve_forever()


def serve_receiver(out: str) -> None:
    from cmdai_cli import receiver as package

    options = getattr(package, "ListenOptions", None)
    if options is None:  # a tree from before ListenOptions (--compare)
        receiver = package.Receiver(port=0, out=out, keep=1000).start()
    else:
        receiver = package.Receiver(options(out=Path(out), keep=1000)).start()
    print(json.dumps({"listening": receiver.url}), flush=True)
    while True:
        time.sleep(3600)


def start(
    command: list[str], stdout_path: Path, src: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    handle = stdout_path.open("wb")
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        first = stdout_path.read_text().split("\n", 1)[0]
        if first:
            return proc, json.loads(first)["listening"]
        time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"{command} did not start")


def one_round(url: str, messages: list[dict]) -> float:
    from segment.analytics import Client

    client = Client("bench-write-key", host=url, max_queue_size=len(messages) + 1)
    started = time.perf_counter()
    for message in messages:
        ok, _ = client.track(
            message["userId"], message["event"], message["properties"],
            message_id=message["messageId"],
        )  # fmt: skip
        assert ok
    client.flush()
    elapsed = time.perf_counter() - started
    client.join()
    return len(messages) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare", metavar="SRC", help="also run the code of this src/ dir")
    parser.add_argument("--forward", action="store_true", help="add listen --forward-to")
    parser.add_argument("--serve-sink", nargs="?", const="", help=argparse.SUPPRESS)
    parser.add_argument("--serve-receiver", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink is not None:
        return serve_sink(args.serve_sink or None)
    if args.serve_receiver:
        return serve_receiver(args.serve_receiver)

    from cmdai_cli import catalogue

    spec = catalogue.lookup("command_execution")
    assert spec is not None
    messages = [
        catalogue.build_message(spec, user_id=f"user-{i % 500}") for i in range(args.messages)
    ]
    work = Path(tempfile.mkdtemp(prefix="cmdai-bench-"))
    python = sys.executable
    cli_out = str(work / "cli.ndjson")
    targets = {
        "do-nothing sink (baseline)": [python, __file__, "--serve-sink"],
        "Receiver API (--out)": [python, __file__, "--serve-receiver", str(work / "api.ndjson")],
        "cmdai listen --json --out": [
            *(python, "-m", "cmdai_cli", "listen", "--port", "0", "--json", "--out", cli_out)
        ],
    }
    forward_sink = None
    if args.forward:
        counts = work / "forwarded.counts"
        forward_sink = start([python, __file__, "--serve-sink", str(counts)], work / "fs.stdout")
        targets["cmdai listen --forward-to"] = [
            *(python, "-m", "cmdai_cli", "listen", "--port", "0", "--json"),
            *("--out", str(work / "forward.ndjson"), "--forward-to", forward_sink[1]),
        ]
    sources: dict[str, str | None] = dict.fromkeys(targets)
    if args.compare:
        src = str(Path(args.compare).resolve())
        other = str(work / "other-api.ndjson")
        targets["Receiver API (--compare)"] = [python, __file__, "--serve-receiver", other]
        targets["cmdai listen (--compare)"] = [
            *(python, "-m", "cmdai_cli", "listen", "--port", "0", "--json"),
            *("--out", str(work / "other-cli.ndjson")),
        ]
        sources["Receiver API (--compare)"] = sources["cmdai listen (--compare)"] = src
    servers = {
        name: start(cmd, work / f"{i}.stdout", sources[name])
        for i, (name, cmd) in enumerate(targets.items())
    }
    rates: dict[str, list[float]] = {name: [] for name in targets}
    try:
        for _, url in servers.values():
            one_round(url, messages[:500])  # warm up connections and imports
        order = list(servers)
        for round_ in range(args.rounds):
            # Rotate who goes first so drifting machine load does not favour one target.
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                rates[name].append(one_round(servers[name][1], messages))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(30)  # a forwarding listen drains first
        if forward_sink is not None:
            forward_sink[0].terminate()
            forward_sink[0].wait(10)
    base = statistics.median(rates["do-nothing sink (baseline)"])
    print(
        f"{args.messages} messages x {args.rounds} rounds, one segment-analytics-python client, "
        f"{os.cpu_count()} CPUs; median rates:"
    )
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  {name:<30} {rate:>9,.0f} msg/s   ratio {rate / base:.2f}")
    stored = sum(1 for _ in (work / "cli.ndjson").open())
    expected = (args.rounds * args.messages) + 500
    print(f"  cmdai listen stored {stored} of {expected} messages sent to it")
    if args.forward:
        plain = statistics.median(rates["cmdai listen --json --out"])
        ahead = statistics.median(rates["cmdai listen --forward-to"])
        got = sum(int(n) for n in (work / "forwarded.counts").read_text().split())
        # Each round's pair ran one after the other: their ratio drifts less with load.
        pairs = [
            a / b
            for a, b in zip(
                rates["cmdai listen --forward-to"], rates["cmdai listen --json --out"], strict=True
            )
        ]
        print(
            f"  --forward-to against listen alone: ratio {ahead / plain:.2f} of medians, "
            f"{statistics.median(pairs):.2f} median of rounds ("
            + " ".join(f"{pair:.2f}" for pair in pairs)
            + ")"
        )
        print(f"  the forward sink got {got} of {expected} messages")


if __name__ == "__main__":
    main()
