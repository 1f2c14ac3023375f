"""Node and the npm packages in tests/node, for the tests that drive Segment's own code."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

NODE_DIR = Path(__file__).parent / "node"


def missing(reason: str) -> NoReturn:
    """Skip a test whose outside program (Node, a package, a browser) is not installed.

    In CI (`CI` set, as `.ci/run` runs) these tests must run: there it fails instead, so
    that a broken install step cannot turn the interoperability tests into skips.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this test: see .ci/run)")
    pytest.skip(reason)


def node_or_skip(*packages: str) -> str:
    """The `node` executable, after checking `packages` are installed; skips otherwise."""
    node = shutil.which("node")
    if node is None:
        missing("node is not installed")
    for package in packages:
        if not (NODE_DIR / "node_modules" / package).is_dir():
            missing(f"{package} is not installed: run `npm ci --prefix tests/node`")
    return node
