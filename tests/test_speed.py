"""The collector tricks leave the collector as they found it, or frozen on purpose."""

from __future__ import annotations

import gc
import weakref

from cmdai_cli import _speed


def test_fewer_collections_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    with _speed.fewer_collections():
        assert gc.get_threshold() == _speed.BULK_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_final_collection_walks_nothing_alive_before_it() -> None:
    # What the freeze at exit is for: the interpreter's last collection leaves alone
    # every object there when the freeze came, while later ones are collected as ever.
    class Node:
        me: object = None

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = Node()
        before.me = before  # a cycle: only the cyclic collector frees it
        kept = weakref.ref(before)
        del before
        _speed.skip_final_collection()
        after = Node()
        after.me = after
        freed = weakref.ref(after)
        del after
        gc.collect()
        assert kept() is not None
        assert freed() is None
    finally:
        gc.unfreeze()
        gc.collect()
        if was_enabled:
            gc.enable()


def test_paused_collector_restores_the_collector() -> None:
    assert gc.isenabled()
    with _speed.paused_collector():
        assert not gc.isenabled()
    assert gc.isenabled()
