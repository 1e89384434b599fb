"""hydra/launcher=slurm against the live single-node cluster of scripts/slurm_local.sh: a sweep
equals the basic launcher's, and preemption, cancellation and time limits end as they should."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from filelock import FileLock

from conftest import ROOT, SMALL, launch
from sweep.results.files import FEATURES_FILE, OUTCOME_FILE, SUMMARY_FILE


def _cluster_problem() -> str | None:
    """Why the SLURM tests cannot run here, or None when a cluster with accounting answers."""
    if shutil.which("sbatch") is None:
        return "no SLURM client on PATH (start one: scripts/slurm_local.sh start)"
    out = {}
    for cmd in (["sacct", "-n", "-X", "-S", "now"], ["sinfo", "-h", "-o", "%T"]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{cmd[0]} failed: {err}"
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["no message"])[0]
            return f"{' '.join(cmd)} failed: {first[:200]}"
        out[cmd[0]] = proc.stdout.split()
    if not any(s.rstrip("*") in ("idle", "mixed", "allocated") for s in out["sinfo"]):
        return f"no usable SLURM node (sinfo states: {out['sinfo']})"
    return None


PROBLEM = _cluster_problem()
# Set by .ci/run once it has started the cluster: from then on a silent skip would hide a bug.
REQUIRED = os.environ.get("QFEAT_SLURM_REQUIRED") == "1"
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(PROBLEM is not None and not REQUIRED, reason=f"no SLURM cluster: {PROBLEM}"),
]


@pytest.fixture(autouse=True)
def _cluster_answers() -> None:
    """Fail, not skip, when the cluster was started for these tests but does not answer."""
    if PROBLEM is not None:
        pytest.fail(f"QFEAT_SLURM_REQUIRED=1 but the SLURM cluster does not answer: {PROBLEM}")


SLURM = ["hydra/launcher=slurm_local"]  # partition debug, CPU tasks of 1 core and 2 GB
JOBS = [*SMALL, "runtime.num_threads=1"]
ARRAY = re.compile(r"#(\d+)[^\[]* \[(\d+(?:_\d+)?)\]: (\w+)")


class Launch:
    """`python launch.py ARGS` followed line by line; react() may act on each line it prints."""

    def __init__(self, *args: str, react: Callable[["Launch", str], None] = lambda *_: None):
        self.jobs: dict[int, str] = {}  # hydra job num -> SLURM array task id
        self.states: dict[int, list[str]] = {}
        self.lines: list[str] = []
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "launch.py", "-m", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for line in proc.stdout:
                self.lines.append(line)
                if m := ARRAY.search(line):
                    num, task, state = int(m[1]), m[2], m[3]
                    self.jobs[num] = task
                    self.states.setdefault(num, []).append(state)
                react(self, line)
            self.rc = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
            for task in self.jobs.values():  # leave nothing queued behind a failed test
                subprocess.run(["scancel", task], capture_output=True, timeout=60)
        self.wall_s = time.perf_counter() - start
        print(f"launch {' '.join(args[:2])}: rc {self.rc}, {self.wall_s:.0f}s, {self.states}")

    @property
    def text(self) -> str:
        return "".join(self.lines)


def summaries(out: Path) -> dict[int, dict]:
    found = [json.loads(p.read_text()) for p in out.glob(f"*/jobs/*/{SUMMARY_FILE}")]
    return {s["bits"]: s for s in found}


def features(out: Path, bits: int) -> pd.DataFrame:
    return pd.read_parquet(out / "default" / "jobs" / summaries(out)[bits]["key"] / FEATURES_FILE)


def assert_same_results(out: Path, expected: Path, bits: list[int]) -> None:
    for b in bits:
        pd.testing.assert_frame_equal(
            features(out, b), features(expected, b), check_exact=False, rtol=0, atol=1e-12
        )


def outcomes(out: Path) -> dict[str, dict]:
    found = [json.loads(p.read_text()) for p in out.glob(f"*/logs/multirun_*/*/{OUTCOME_FILE}")]
    return {o["job"]: o for o in found}


def last_statuses(out: Path) -> dict[str, str]:
    """Each job's status in the closing table of the latest launch."""
    last = max(out.glob("default/logs/multirun_*"), key=lambda p: p.stat().st_mtime)
    found = [json.loads(p.read_text()) for p in last.glob(f"*/{OUTCOME_FILE}")]
    return {o["job"]: o["status"] for o in found}


def job_log(out: Path, task: str, suffix: str, containing: str = "") -> str:
    """A SLURM task's submitit log, once it exists and holds `containing`."""
    deadline = time.time() + 300
    while time.time() < deadline:
        for path in (out / "default" / "logs").glob(f"multirun_*/.submitit/{task}/*_log.{suffix}"):
            if containing in (text := path.read_text()):
                return text
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} log of {task} holding {containing!r} after 300s")


@pytest.fixture(scope="module")
def basic(tmp_path_factory) -> Path:
    """The bits=2,3 sweep through Hydra's basic launcher: the uninterrupted reference run."""
    out = tmp_path_factory.mktemp("basic")
    launch("-m", "bits=2,3", *JOBS, f"out_root={out}")
    return out


def test_slurm_sweep_equals_basic_launcher_and_shares_one_reference(basic, tmp_path) -> None:
    run = Launch("bits=2,3", *SLURM, *JOBS, f"out_root={tmp_path}")
    assert run.rc == 0, run.text[-3000:]
    assert_same_results(tmp_path, basic, [2, 3])
    done = summaries(tmp_path).values()
    assert len({s["reference"]["key"] for s in done}) == 1
    assert sorted(s["reference"]["computed"] for s in done) == [False, True]
    assert len(list((tmp_path / "reference_cache").glob("*/reference.json"))) == 1
    assert all(states[-1] == "done" and "running" in states for states in run.states.values())


def test_relaunch_submits_only_the_missing_jobs(basic, tmp_path) -> None:
    """The complete sweep relaunched through SLURM submits no array task; with one job's result
    removed, an array of one task (as sacct counts it), and the table lists both jobs."""
    out = tmp_path / "out"
    shutil.copytree(basic, out)
    args = ["bits=2,3", *SLURM, *JOBS, f"out_root={out}"]
    complete = Launch(*args)
    assert complete.rc == 0, complete.text[-3000:]
    assert complete.jobs == {} and "2 jobs: 2 complete (skipped)" in complete.text
    assert not list(out.glob("default/logs/multirun_*/.submitit/*"))
    assert last_statuses(out) == {"0": "skipped", "1": "skipped"}

    kept = summaries(out)[2]
    shutil.rmtree(out / "default" / "jobs" / summaries(out)[3]["key"])
    partial = Launch(*args)
    assert partial.rc == 0, partial.text[-3000:]
    assert list(partial.jobs) == [1] and "submitting 1" in partial.text
    task = partial.jobs[1]
    sacct = subprocess.run(
        ["sacct", "-j", task.split("_")[0], "-X", "-n", "-P", "-o", "JobID"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert sacct.stdout.split() == [task]  # the array holds the missing job alone
    assert_same_results(out, basic, [2, 3])
    assert summaries(out)[2]["created"] == kept["created"]
    assert last_statuses(out) == {"0": "skipped", "1": "complete"}


def test_preempted_task_checkpoints_requeues_and_finishes_identically(basic, tmp_path) -> None:
    preempted: list[str] = []

    def preempt_mid_measurement(run: Launch, line: str) -> None:
        if preempted or "running" not in line or 0 not in run.jobs:
            return
        task = run.jobs[0]
        job_log(tmp_path, task, "out", "tokens")  # its first stage is over: it is measuring
        subprocess.run(["scancel", "--signal=USR2", task], check=True, timeout=60)
        preempted.append(task)

    run = Launch("bits=2,3", *SLURM, *JOBS, f"out_root={tmp_path}", react=preempt_mid_measurement)
    assert run.rc == 0, run.text[-3000:]
    (task,) = preempted
    assert "this job is preempted" in job_log(tmp_path, task, "err")
    out = job_log(tmp_path, task, "out")  # submitit's own account, then the job's second run
    assert f"Requeued job {task}" in out and out.count("qfeat job #0 CUDA_VISIBLE_DEVICES") == 2
    assert run.states[0][-3:] == ["requeued", "running", "done"]
    assert_same_results(tmp_path, basic, [2, 3])
    assert list(tmp_path.rglob("*.tmp")) == []  # no partial result anywhere
    assert len(list((tmp_path / "default" / "jobs").iterdir())) == 2


def test_cancelled_task_fails_the_launch_and_a_relaunch_fills_the_gap(basic, tmp_path) -> None:
    # Both tasks wait for the FP reference whose cache lock this test holds, so task 1 is still
    # running when it is cancelled however fast the box; the lock is released right after.
    key = next(iter(summaries(basic).values()))["reference"]["key"]
    cache = tmp_path / "reference_cache"
    cache.mkdir()
    lock = FileLock(str(cache / f"{key}.lock"))

    def cancel_job_1_once_running(run: Launch, line: str) -> None:
        if run.states.get(1, [])[-1:] == ["running"] and "cancelled" not in run.states:
            subprocess.run(["scancel", run.jobs[1]], check=True, timeout=60)
            run.states["cancelled"] = [run.jobs[1]]
            lock.release()

    args = ["bits=2,3", *SLURM, *JOBS, f"out_root={tmp_path}"]
    lock.acquire()
    try:
        run = Launch(*args, react=cancel_job_1_once_running)
    finally:
        if lock.is_locked:
            lock.release(force=True)
    assert run.rc == 1, run.text[-3000:]
    task = run.jobs[1]
    assert f"cancelled by SLURM (job {task})" in run.text
    assert outcomes(tmp_path)["1"]["status"] == "failed"
    kept = summaries(tmp_path)
    assert list(kept) == [2] and kept[2]["status"] == "complete"

    again = Launch(*args)
    assert again.rc == 0, again.text[-3000:]
    after = summaries(tmp_path)
    assert sorted(after) == [2, 3] and after[2]["created"] == kept[2]["created"]


def test_time_limit_requeues_up_to_max_num_timeout_then_fails(basic, tmp_path) -> None:
    # The task's work outlasts its 1-minute limit: it waits for the FP reference that another
    # holder of its cache lock (this test) never finishes computing. SLURM checks limits every
    # 30 s; signal_delay_s=1 sends USR2 29-59 s into each run, after submitit has set up its
    # handler (a slow start could otherwise be killed by USR2's default action).
    key = next(iter(summaries(basic).values()))["reference"]["key"]
    cache = tmp_path / "reference_cache"
    cache.mkdir()
    limits = [
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=1",
        "hydra.launcher.max_num_timeout=1",
    ]
    with FileLock(str(cache / f"{key}.lock")):
        run = Launch("bits=2", *SLURM, *limits, *JOBS, f"out_root={tmp_path}")
    assert run.rc == 1, run.text[-3000:]
    assert run.states[0].count("requeued") == 1 and run.states[0][-1] == "failed"
    (outcome,) = outcomes(tmp_path).values()
    assert outcome["status"] == "failed" and re.search("timed[- ]out", outcome["error"])
    assert summaries(tmp_path) == {}
