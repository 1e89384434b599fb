"""The local launcher's device list and its per-GPU queue, without starting any process."""

from types import SimpleNamespace

import pytest

from hydra_plugins.qfeat_launcher.launcher import _GpuQueue, machine_gpus
from hydra_plugins.qfeat_launcher.progress import Tracked


@pytest.mark.parametrize(
    ("visible", "expected"), [("0,1", [0, 1]), (" 3 , 5 ", [3, 5]), ("", []), ("2", [2])]
)
def test_machine_gpus_reads_cuda_visible_devices(visible, expected, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert machine_gpus() == expected


def test_machine_gpus_refuses_uuids(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1a2b,GPU-3c4d")
    with pytest.raises(ValueError, match=r"set hydra\.launcher\.devices"):
        machine_gpus()


class FakeJob:
    """A submitted job that ends when told to."""

    def __init__(self) -> None:
        self.finished = False

    def done(self) -> bool:
        return self.finished


class FakeExecutor:
    """submitit's executor: records each job's devices at submission."""

    def __init__(self) -> None:
        self.visible: tuple[int, ...] = ()
        self.submitted: list[tuple[int, tuple[int, ...]]] = []

    def update_parameters(self, visible_gpus=(), gpus_per_node=0) -> None:
        self.visible = tuple(visible_gpus)

    def submit(self, _fn, *args) -> FakeJob:
        self.submitted.append((args[2], self.visible))
        return FakeJob()


def test_two_gpus_per_job_are_placed_without_sharing_and_freed_when_done() -> None:
    launcher = SimpleNamespace(_job_args=lambda t: ([], "k", t.num, "id", None))
    tracked = [Tracked(i, []) for i in range(3)]
    executor = FakeExecutor()
    queue = _GpuQueue(launcher, executor, tracked, [0, 1, 2, 3], per_job=2)
    queue.submit_ready()
    assert executor.submitted == [(0, (0, 1)), (1, (2, 3))]  # the third waits
    tracked[1].job.finished = True
    queue.submit_ready()
    assert executor.submitted[-1] == (2, (2, 3))  # gets the devices the second job freed
    assert tracked[0].devices == (0, 1) and tracked[2].devices == (2, 3)
