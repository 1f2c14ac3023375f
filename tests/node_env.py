"""Node and the npm packages in tests/node, for the tests that drive Segment's own code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"


def node_or_skip(*packages: str) -> str:
    """The `node` executable, after checking `packages` are installed; skips otherwise."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    for package in packages:
        if not (NODE_DIR / "node_modules" / package).is_dir():
            pytest.skip(f"{package} is not installed: run `npm ci --prefix tests/node`")
    return node
