"""Drawing a report on several cores: forked worker processes inherit the read-only data their
tasks read (the collection, the survival summary) without copying or pickling it, and each task
sends back only its small result (a written figure, a job's cards). One worker runs the tasks in
place, in this process."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

_SHARED: dict[str, Any] = {}


def shared(name: str) -> Any:
    """The value the open pool's creator shared under `name` (in a worker: inherited by fork)."""
    return _SHARED[name]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class InPlace(Executor):
    """Runs each task as it is submitted, in this process."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # raised again by future.result(), as a worker's would be
            future.set_exception(err)
        return future


@contextmanager
def pool(workers: int, **values: Any) -> Iterator[Executor]:
    """An executor whose tasks read `values` through shared(): `workers` forked processes when
    more than one is asked for and the platform forks, else the tasks run in place."""
    if _SHARED:
        raise RuntimeError("a drawing pool is already open in this process")
    _SHARED.update(values)
    try:
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as executor:
                yield executor
        else:
            yield InPlace()
    finally:
        _SHARED.clear()
