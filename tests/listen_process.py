"""`cmdai listen` as a real process, for the tests that need one (signals, files, exits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


class ListenProcess:
    """Starts `cmdai listen --port 0 [--json] ARGS` and reads its first line.

    `url` is where it listens ("" when it exited at start: `err` then says why), and
    under --json `debugger` the Source Debugger's address.
    """

    def __init__(self, *args: str, json_mode: bool = True) -> None:
        mode = ["--json"] if json_mode else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cmdai_cli", "listen", "--port", "0", *mode, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        self.url = self.debugger = self.err = ""
        if not first:
            self.err = self.proc.communicate(timeout=10)[1]
        elif json_mode:
            started = json.loads(first)
            self.url, self.debugger = started["listening"], started["debugger"]
        else:
            self.url = first.split()[-1]

    def kill(self) -> None:
        """End it, if it still runs (a test's cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)
