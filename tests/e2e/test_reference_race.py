"""The FP reference cache under a real race: processes released together by a barrier compute
the reference once (spawned processes import torch: seconds each, so an end-to-end test)."""

import multiprocessing as mp
import time
from pathlib import Path

import torch

from helpers import make_reference
from sweep.passes.reference import Reference
from sweep.passes.reference_cache import load_or_compute


def _racer(root: str, log: str, barrier, results) -> None:
    """One of several processes asking for the same reference at the same moment: each waits
    at the barrier (after its imports), so all reach the cache together."""

    def compute() -> Reference:
        with open(log, "a") as f:
            f.write("computed\n")
        time.sleep(0.5)  # the lock is held while the others ask
        return make_reference()

    barrier.wait(timeout=120)
    ref, computed = load_or_compute(root, "shared", compute)
    results.put((computed, torch.equal(ref.nll, make_reference().nll)))


def test_concurrent_processes_compute_once(tmp_path: Path) -> None:
    """Four processes released together by a barrier: exactly one computes the reference, the
    others wait on the lock and read the entry it wrote."""
    log, ctx, n = tmp_path / "log.txt", mp.get_context("spawn"), 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    racers = [
        ctx.Process(target=_racer, args=(str(tmp_path / "cache"), str(log), barrier, results))
        for _ in range(n)
    ]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=300) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
    assert sorted(c for c, _ in outcomes) == [False] * (n - 1) + [True]
    assert all(same for _, same in outcomes)
    assert log.read_text().count("computed") == 1
