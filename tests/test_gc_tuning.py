"""The collector settings every long-running regdb process applies once (regdb/gc_tuning.py)."""

from __future__ import annotations

import subprocess
import sys

from regdb.gc_tuning import GC_YOUNG_THRESHOLD


def test_settle_gc_freezes_the_heap_and_raises_the_young_threshold() -> None:
    # In a child: freezing the test process's heap would change every later test.
    code = (
        "import gc\n"
        "before = (gc.get_threshold(), gc.get_freeze_count())\n"
        "from regdb.gc_tuning import settle_gc\n"
        "settle_gc()\n"
        "print(before[0][0], before[1], gc.get_threshold()[0], gc.get_threshold()[1:] == "
        "before[0][1:], gc.get_freeze_count())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    default_young, frozen_before, young, older_kept, frozen = out
    assert int(default_young) < GC_YOUNG_THRESHOLD
    assert int(frozen_before) == 0
    assert int(young) == GC_YOUNG_THRESHOLD and older_kept == "True"
    assert int(frozen) > 1000  # the modules and what they built are out of the collector's sight
