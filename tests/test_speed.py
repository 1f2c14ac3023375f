"""The collector tricks leave the collector as they found it, or frozen on purpose."""

from __future__ import annotations

import gc

from cmdai_cli import _speed


def test_fewer_collections_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    with _speed.fewer_collections():
        assert gc.get_threshold() == _speed.BULK_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_final_collection_is_skipped_in_a_child() -> None:
    import subprocess
    import sys

    probe = (
        "import gc\n"
        "from cmdai_cli import _speed\n"
        "_speed.skip_final_collection()\n"
        "print(gc.get_freeze_count() > 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


def test_paused_collector_restores_the_collector() -> None:
    assert gc.isenabled()
    with _speed.paused_collector():
        assert not gc.isenabled()
    assert gc.isenabled()
