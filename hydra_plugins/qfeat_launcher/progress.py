"""Watching submitted jobs: one status line per state change, and why a job failed, in one line."""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides

log = logging.getLogger(__name__)

PENDING, REQUEUED, RUNNING, DONE, FAILED = "pending", "requeued", "running", "done", "failed"
# submitit's view of a job that has not ended: SLURM states (sacct) and the local executor's.
_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "UNKNOWN"}
_RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT"}


@dataclass
class Tracked:
    """One job of a launch: its Hydra number and overrides, submitit job, and last shown state."""

    num: int
    overrides: list[str]
    label: str = ""  # the overrides that tell this job from the launch's others
    job: Any = None  # submitit Job, None while it waits for a free device
    devices: tuple[int, ...] = ()
    dir: Any = None  # its Hydra job directory (a Path), where its outcome.json goes
    shown: str = ""
    result: JobReturn | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        where = f" [{self.job.job_id}]" if self.job is not None else ""
        gpu = f" gpu {','.join(map(str, self.devices))}" if self.devices else ""
        return f"#{self.num}{self.label}{where}{gpu}"


def label_jobs(tracked: list[Tracked]) -> None:
    """Name each job by the overrides it does not share with every other job of the launch."""
    shared = set.intersection(*(set(t.overrides) for t in tracked))
    for t in tracked:
        t.label = "".join(f" {x}" for x in filter_overrides(t.overrides) if x not in shared)


def _state_label(state: str, previous: str) -> str:
    state = state.split()[0].upper() if state else "UNKNOWN"
    if state in _RUNNING:
        return RUNNING
    if state in _WAITING:
        return REQUEUED if previous in (RUNNING, REQUEUED) else PENDING
    return previous or PENDING  # ended: settled from its result, not from the state


def show(t: Tracked, label: str, detail: str = "") -> None:
    """Log a job's state when it changes."""
    if label != t.shown:
        t.shown = label
        log.info("%s: %s%s", t.name, label, f" ({detail})" if detail else "")


def failure_reason(t: Tracked, err: BaseException, max_num_timeout: int) -> str:
    """One line saying why a job ended without a result."""
    text = str(err)
    job_id = t.job.job_id
    if "timed-out too many times" in text:
        return f"timed out {max_num_timeout + 1} times (job {job_id})"
    state = (t.job.state or "").split()[0].upper() if t.job.state else ""
    if state.startswith("CANCELLED"):
        return f"cancelled by SLURM (job {job_id})"
    if state in ("TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "DEADLINE"):
        return f"{state.lower().replace('_', ' ')} (job {job_id})"
    if state == "INTERRUPTED":
        return f"killed (local job {job_id})"
    # A job that raised: the last line of its traceback is the exception. One that died: the
    # last line of its error stream says how.
    parts = text.split("-" * 22)
    trace = parts[1] if len(parts) > 2 else text
    lines = [line.strip() for line in trace.splitlines() if line.strip() and "---" not in line]
    last = lines[-1] if lines else type(err).__name__
    if "has not produced any output" in text:
        return f"ended without a result, state {state or 'unknown'}: {last} (job {job_id})"
    return f"{last} (job {job_id})"


def _reported_failure(outcome_file) -> str | None:
    """The error of a job that recorded its own failure, None if it did not fail."""
    try:
        outcome = json.loads(outcome_file.read_text())
    except (OSError, ValueError):
        return None
    if outcome.get("status") != FAILED:
        return None
    return outcome.get("error") or "failed"


def settle(t: Tracked, max_num_timeout: int, outcome_file_of: Callable[[Tracked], Any]) -> None:
    """Collect an ended job's result (or why it has none) and show done/failed."""
    try:
        result = t.job.result()
    except Exception as err:  # submitit's UncompletedJobError/FailedJobError, or anything else
        t.error = failure_reason(t, err, max_num_timeout)
    else:
        if result.status == JobStatus.COMPLETED:
            t.result = result
        else:
            t.error = f"{type(result._return_value).__name__}: {result._return_value}"
    if t.error is None:
        t.error = _reported_failure(outcome_file_of(t))
        show(t, DONE if t.error is None else FAILED, t.error or "")
    else:
        show(t, FAILED, t.error)


def refresh(active: list[Tracked]) -> None:
    """One cluster query for every job still out (submitit otherwise backs off to minutes)."""
    from submitit import SlurmJob

    if active and isinstance(active[0].job, SlurmJob):
        active[0].job.watcher.update()


def watch(
    tracked: list[Tracked],
    poll_s: float,
    max_num_timeout: int,
    outcome_file_of: Callable[[Tracked], Any],
    submit_ready: Callable[[], None] = lambda: None,
) -> None:
    """Wait for every job, showing state changes; submit_ready places queued jobs as room frees."""
    for t in tracked:
        show(t, PENDING)
    while True:
        submit_ready()
        active = [t for t in tracked if t.job is not None and t.shown not in (DONE, FAILED)]
        if not active and all(t.job is not None for t in tracked):
            return
        refresh(active)
        for t in active:
            if t.job.done():
                settle(t, max_num_timeout, outcome_file_of)
            else:
                show(t, _state_label(t.job.state, t.shown))
        if any(t.shown not in (DONE, FAILED) for t in tracked):
            time.sleep(poll_s)
