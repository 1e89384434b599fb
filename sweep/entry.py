"""The entry point's side of a job: run it, and turn any failure into one line, a recorded
failure and an outcome for the launch's closing table (sweep.outcomes)."""

import logging
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sweep.constants import FAILURE_FILE
from sweep.errors import QfeatError, one_line
from sweep.job import run
from sweep.outcomes import COMPLETE, SKIPPED, Outcome, write_outcome
from sweep.record import job_dir, job_key, write_json_atomic

log = logging.getLogger("qfeat")


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _record_failure(cfg: DictConfig, err: BaseException) -> None:
    try:
        out = job_dir(cfg, job_key(cfg))
        write_json_atomic(
            Path(out) / FAILURE_FILE,
            {"error": one_line(err), "time": datetime.now(timezone.utc).isoformat()},
        )
    except Exception:  # the config, or the disk, may be what failed; the outcome still says it
        return


def _record_outcome(cfg: DictConfig, metrics: dict | None, err: BaseException | None) -> None:
    """The job's outcome in its Hydra job directory, for the launch's closing table."""
    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    outcome = Outcome(job=str(hydra.job.get("num", 0)), overrides=list(hydra.overrides.task))
    if err is not None:
        outcome.error = one_line(err)
    else:
        outcome.status = SKIPPED if metrics.get("skipped") else COMPLETE
        outcome.frac_survived = metrics.get("frac_survived")
        outcome.delta_ppl = metrics.get("delta_ppl")
    with suppress(Exception):
        outcome.key = job_key(cfg)
    try:
        write_outcome(Path(hydra.runtime.output_dir), outcome)
    except QfeatError as write_err:
        log.error("qfeat: error: %s", write_err)


def run_safely(cfg: DictConfig) -> dict | None:
    """Run a job; bad input is one line (exit 2), a bug keeps its traceback (exit 1). In a
    multirun a failure is recorded and the sweep goes on; its closing table reports it."""
    try:
        metrics = run(cfg)
    except Exception as err:
        if isinstance(err, QfeatError):
            log.error("qfeat: error: %s", err)
        else:
            log.exception("job failed")
        _record_failure(cfg, err)
        _record_outcome(cfg, None, err)
        if not _is_multirun():
            raise SystemExit(2 if isinstance(err, QfeatError) else 1) from err
        return None
    _record_outcome(cfg, metrics, None)
    return metrics
