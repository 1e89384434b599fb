"""The entry point's side of a job: plan it (cheap), run it (the model stack is imported only
now), and turn any failure into one line, a recorded failure and an outcome for the launch's
closing table."""

import logging
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sweep.base.atomic import write_json_atomic
from sweep.base.errors import QfeatError, one_line
from sweep.base.shutdown import skip_final_collection
from sweep.job.keys import JobPlan, completed, plan_job
from sweep.job.outcomes import COMPLETE, SKIPPED, Outcome, finished, write_outcome
from sweep.results.files import FAILURE_FILE
from sweep.results.summary import Summary

log = logging.getLogger("qfeat")


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record_failure(plan: JobPlan | None, err: BaseException) -> None:
    if plan is None:  # the config itself was bad: no job directory to record it in
        return
    with suppress(Exception):  # the disk may be what failed; the outcome still says it
        write_json_atomic(
            plan.out / FAILURE_FILE,
            {"error": one_line(err), "time": datetime.now(timezone.utc).isoformat()},
        )


def _record_outcome(
    plan: JobPlan | None, summary: Summary | None, skipped: bool, err: BaseException | None
) -> None:
    """The job's outcome in its Hydra job directory, for the launch's closing table."""
    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    job, overrides = str(hydra.job.get("num", 0)), list(hydra.overrides.task)
    if err is not None:
        key = plan.key if plan is not None else None
        outcome = Outcome(job=job, overrides=overrides, key=key, error=one_line(err))
    else:
        outcome = finished(job, overrides, SKIPPED if skipped else COMPLETE, summary)
    try:
        write_outcome(Path(hydra.runtime.output_dir), outcome)
    except QfeatError as write_err:
        log.error("qfeat: error: %s", write_err)


def execute(cfg: DictConfig, plan: JobPlan) -> tuple[Summary, bool]:
    """The job's summary and whether it was skipped: a complete job is answered from its files
    without importing the model stack."""
    if (done := completed(plan)) is not None:
        log.info("skipped: complete result for key %s at %s", plan.key, plan.out)
        return done, True
    from sweep.job.run import run  # torch, transformers, SAE-Lens: only for work to do

    skip_final_collection()
    result = run(cfg, plan)
    return result.summary, result.skipped


def run_safely(cfg: DictConfig) -> float | None:
    """Run a job; bad input is one line (exit 2), a bug keeps its traceback (exit 1). In a
    multirun a failure is recorded and the sweep goes on; its closing table reports it.
    Returns the fraction of active features that survived."""
    plan = None
    try:
        plan = plan_job(cfg)
        summary, skipped = execute(cfg, plan)
    except Exception as err:
        if isinstance(err, QfeatError):
            log.error("qfeat: error: %s", err)
        else:
            log.exception("job failed")
        _record_failure(plan, err)
        _record_outcome(plan, None, False, err)
        if not _is_multirun():
            raise SystemExit(2 if isinstance(err, QfeatError) else 1) from err
        return None
    _record_outcome(plan, summary, skipped, None)
    return summary.metrics.frac_survived
