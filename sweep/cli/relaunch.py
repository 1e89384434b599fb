"""Before a launch submits anything: each job planned (its key; no model stack imported), a
complete job answered from its files, a job sharing its key with an earlier job of the same
launch run once, and a config that fails its checks recorded as failed. Only the rest is
submitted, so relaunching a complete sweep submits nothing, whatever the launcher."""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from sweep.base.errors import QfeatError, one_line
from sweep.job.keys import completed, plan_job
from sweep.job.outcomes import COMPLETE, FAILED, SKIPPED, Outcome, finished, write_outcome
from sweep.results.files import OUTCOME_FILE

log = logging.getLogger("qfeat")


@dataclass
class Triaged:
    """One job of a launch after the pass: submit it, or its outcome is already known (`answer`),
    or it waits on the earlier job of this launch that has its key (`same_as`)."""

    num: int
    overrides: list[str]
    job_dir: Path  # its Hydra job directory, where its outcome.json goes
    key: str | None = None
    answer: Outcome | None = None
    same_as: "Triaged | None" = None

    @property
    def submit(self) -> bool:
        return self.answer is None and self.same_as is None


def triage(
    num: int,
    overrides: list[str],
    job_dir: Path,
    task_config: Callable[[], DictConfig],
    first_of_key: dict[str, Triaged],
) -> Triaged:
    """Plan one job; answer it now when its outcome is already known. `first_of_key` maps each
    key seen so far in this launch to its first job (updated here)."""
    job = Triaged(num, overrides, job_dir)
    try:
        plan = plan_job(task_config())
    except QfeatError as err:  # the job would fail its checks identically: no need to run it
        log.error("qfeat: error: job #%d: %s", num, err)
        _answer(job, Outcome(str(num), overrides, FAILED, error=one_line(err)))
        return job
    except Exception as err:  # not a checked failure: the job runs and records its own
        log.warning("qfeat: job #%d could not be planned before launch (%s)", num, one_line(err))
        return job
    job.key = plan.key
    if plan.key in first_of_key:
        job.same_as = first_of_key[plan.key]
        return job
    first_of_key[plan.key] = job
    if (done := completed(plan)) is not None:
        _answer(job, finished(str(num), overrides, SKIPPED, done))
    return job


def _answer(job: Triaged, outcome: Outcome) -> None:
    job.answer = outcome
    write_outcome(job.job_dir, outcome)


def answer_same_key(job: Triaged) -> Outcome:
    """After the launch: a job that shared its key with an earlier one is a skip with that job's
    numbers, or a failure naming it when it did not finish."""
    first = job.same_as
    assert first is not None
    outcome = Outcome(str(job.num), job.overrides, FAILED, job.key, same_as=str(first.num))
    try:
        theirs = Outcome(**json.loads((first.job_dir / OUTCOME_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        theirs = None
    if theirs is not None and theirs.status in (COMPLETE, SKIPPED):
        outcome.status = SKIPPED
        outcome.frac_survived, outcome.delta_ppl = theirs.frac_survived, theirs.delta_ppl
        outcome.frac_uncertain = theirs.frac_uncertain
    else:
        outcome.error = f"same key as job {first.num}, which did not finish"
    _answer(job, outcome)
    return outcome


def announce(jobs: list[Triaged]) -> None:
    """One line: how many jobs the pass answered and how many go on to be submitted."""
    complete = sum(j.answer is not None and j.answer.status == SKIPPED for j in jobs)
    failed = sum(j.answer is not None and j.answer.status == FAILED for j in jobs)
    same = sum(j.same_as is not None for j in jobs)
    submit = sum(j.submit for j in jobs)
    log.info(
        "%d jobs: %d complete (skipped), %d sharing a key with another job of this launch, "
        "%d failing their checks; submitting %d",
        len(jobs),
        complete,
        same,
        failed,
        submit,
    )
