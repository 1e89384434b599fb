"""The quick exit: the heap is frozen at exit, once, after the handlers registered later."""

import subprocess
import sys

from conftest import ROOT, SUBPROCESS_TIMEOUT_S

PROBE = """
import atexit, gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
from sweep.base.shutdown import skip_final_collection
before = atexit._ncallbacks()
skip_final_collection()
skip_final_collection()
atexit.register(lambda: print("frozen before later handlers:", gc.get_freeze_count() > 0))
print("registered:", atexit._ncallbacks() - before - 1)
print("frozen now:", gc.get_freeze_count() > 0)
"""


def test_the_heap_is_frozen_at_exit_once_and_after_later_handlers() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    ).stdout.splitlines()
    assert out == [
        "registered: 1",
        "frozen now: False",
        "frozen before later handlers: False",
        "frozen at exit: True",
    ]
