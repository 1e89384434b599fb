"""The report's drawing pool: tasks read what the pool shares, in forked workers or in place."""

import os

import pytest

from analysis.workers import InPlace, pool, shared, usable_cores


def scaled(x: int) -> tuple[int, int]:
    """A task: x times the shared factor, and the process that computed it."""
    return x * shared("factor"), os.getpid()


def failing() -> None:
    raise ValueError("a task failed")


@pytest.mark.parametrize("workers", [1, 2])
def test_tasks_read_the_shared_values_and_return_in_submission_order(workers: int) -> None:
    with pool(workers, factor=3) as executor:
        results = [f.result() for f in [executor.submit(scaled, x) for x in range(6)]]
    assert [value for value, _ in results] == [0, 3, 6, 9, 12, 15]
    pids = {pid for _, pid in results}
    if workers == 1:
        assert isinstance(executor, InPlace) and pids == {os.getpid()}
    else:
        assert os.getpid() not in pids  # forked workers drew them


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_task_raises_its_error_at_result(workers: int) -> None:
    with pool(workers) as executor:
        future = executor.submit(failing)
        with pytest.raises(ValueError, match="a task failed"):
            future.result()


def test_the_shared_values_last_as_long_as_the_pool() -> None:
    with pool(1, factor=2):
        assert shared("factor") == 2
        with pytest.raises(RuntimeError, match="already open"), pool(1, factor=5):
            pass
        assert shared("factor") == 2
    with pytest.raises(KeyError):
        shared("factor")


def test_usable_cores_is_at_least_one_and_at_most_the_machine() -> None:
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
