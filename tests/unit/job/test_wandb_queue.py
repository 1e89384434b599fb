"""wandb off the job's path (sweep.job.wandb_queue, sweep.job.tracking): a job queues its run and
goes on; a writer makes one run per job from the job's files, each request once; the table is
the one wandb builds from the frame; a failed job's run says so; wandb off costs nothing."""

import json
import os
import subprocess
import sys

import pytest
import wandb
from synthetic import features_frame, write_job
from wandb.util import json_friendly

from conftest import SMALL, compose_config
from sweep.job import tracking, wandb_queue
from sweep.job.keys import plan_job


def finished_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(proc.stdout)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An offline-wandb job config under tmp_path, with a complete result for its key."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv(wandb_queue.SERVED, raising=False)
    # its own sweep name, so its run id is not one an earlier test's wandb service still holds
    cfg = compose_config([*SMALL, "wandb.mode=offline", f"out_root={tmp_path}", "sweep_name=q"])
    plan = plan_job(cfg)
    write_job(tmp_path / "q", plan.key)
    return cfg, plan


def test_the_table_logs_what_wandb_builds_from_the_frame() -> None:
    """Same columns and column types, and every cell serializes as wandb serializes the cell
    of wandb.Table(dataframe=frame): same JSON value and type (wandb's own == fails on NaN)."""
    frame = features_frame([0.99, 0.5, float("nan"), 0.1])
    fast, wandbs = tracking.features_table(frame), wandb.Table(dataframe=frame)
    assert fast.columns == wandbs.columns and fast._column_types == wandbs._column_types
    assert len(fast.data) == len(wandbs.data) == len(frame)
    for mine, theirs in zip(fast.data, wandbs.data, strict=True):
        logged = [json_friendly(v)[0] for v in mine]
        expected = [json_friendly(v)[0] for v in theirs]
        assert [type(v) for v in logged] == [type(v) for v in expected]
        assert all(a == b or (a != a and b != b) for a, b in zip(logged, expected, strict=True))


def test_a_writer_logs_each_queued_run_once(offline, tmp_path) -> None:
    cfg, plan = offline
    queue = wandb_queue.queue_of(cfg)
    req = tracking.request(cfg, plan.key, plan.out)
    queue.mkdir(parents=True)
    (queue / f"{plan.key}.json").write_text(json.dumps(req))
    assert wandb_queue.drain(queue, finished_pid()) == 1
    assert wandb_queue.drain(queue, finished_pid()) == 0  # claimed and gone
    (run,) = (tmp_path / "q" / "wandb").glob(f"offline-run-*-{req['init']['id']}")
    (table,) = run.glob("files/media/table/features_*.table.json")
    assert "r" in json.loads(table.read_text())["columns"]
    assert (run / "files" / "summary.json").read_text() == (plan.out / "summary.json").read_text()
    assert list(queue.iterdir()) == []


def test_hand_off_queues_and_starts_one_writer_per_queue(offline, monkeypatch) -> None:
    cfg, plan = offline
    started = []
    monkeypatch.setattr(wandb_queue, "start_writer", lambda q, pid: started.append((q, pid)))
    wandb_queue.hand_off(cfg, plan.key, plan.out)
    queue = wandb_queue.queue_of(cfg)
    assert json.loads((queue / f"{plan.key}.json").read_text()) == tracking.request(
        cfg, plan.key, plan.out
    )
    assert started == [(queue, os.getpid())]
    monkeypatch.setenv(wandb_queue.SERVED, str(queue))  # a launch's writer serves it
    wandb_queue.hand_off(cfg, plan.key, plan.out)
    assert len(started) == 1


def test_a_launch_running_its_jobs_here_starts_the_writer_after_them(offline, monkeypatch) -> None:
    """qfeat_basic defers the writer: the queue is served (jobs start none of their own) but
    the writer starts only when the launch calls what serve_launch returned; submitit launches
    start it at once."""
    cfg, plan = offline
    started = []
    monkeypatch.setattr(wandb_queue, "start_writer", lambda q, pid: started.append((q, pid)))
    queue = wandb_queue.queue_of(cfg)
    start = wandb_queue.serve_launch(cfg, defer=True)
    wandb_queue.hand_off(cfg, plan.key, plan.out)
    assert started == [] and str(queue) in os.environ[wandb_queue.SERVED]
    start()
    assert started == [(queue, os.getpid())]
    monkeypatch.delenv(wandb_queue.SERVED)
    wandb_queue.serve_launch(cfg)()  # started at once; what it returns starts nothing more
    assert started == [(queue, os.getpid())] * 2


def test_wandb_off_or_in_the_job_queues_nothing(offline, monkeypatch) -> None:
    cfg, plan = offline
    logged = []
    monkeypatch.setattr(tracking, "log_run", logged.append)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    wandb_queue.hand_off(cfg, plan.key, plan.out)
    monkeypatch.delenv("WANDB_MODE")
    cfg.wandb.background = False
    wandb_queue.hand_off(cfg, plan.key, plan.out)
    assert [r["init"]["id"] for r in logged] == [tracking.run_id(cfg, plan.key)]
    assert not wandb_queue.queue_of(cfg).exists()


class FakeRun:
    """What log_run does to a run, without wandb."""

    dir, id = "/nonexistent", "fake"

    def __init__(self) -> None:
        self.summary: dict = {}
        self.exit_code = None

    def finish(self, exit_code: int) -> None:
        self.exit_code = exit_code


def test_a_failed_jobs_run_carries_its_error_and_fails(offline, monkeypatch) -> None:
    cfg, plan = offline
    runs = []
    monkeypatch.setattr(tracking, "_init", lambda req, mode: runs.append(FakeRun()) or runs[-1])
    tracking.log_run(tracking.request(cfg, plan.key, plan.out, error="QfeatError: bad SAE"))
    (run,) = runs
    assert run.summary == {"error": "QfeatError: bad SAE"} and run.exit_code == 1
