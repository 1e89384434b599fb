"""wandb logging of one job: a run with its config, summary metrics, summary.json and the
per-feature table, made from a request (what the job knew) and the job's result files.

Local result files are the truth; wandb is a view of them, and a wandb failure never costs a
result: an online run that cannot start (no network, no login) falls back to an offline run
(`wandb sync` uploads it later) with one warning, and a failure while logging or finishing is one
warning too. A job does not wait for any of it: sweep.job.wandb_queue hands its request to a
background writer (`wandb.background=false`: logged in the job). Offline by default (no account
needed), `wandb.mode=disabled` in tests.
"""

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.base.errors import one_line
from sweep.config.validate import wandb_mode
from sweep.results.files import FEATURES_FILE, SUMMARY_FILE
from sweep.results.summary import parse_summary

log = logging.getLogger("qfeat")


def run_id(cfg: DictConfig, key: str) -> str:
    """The job's wandb run id: one run per job key and sweep (a rerun resumes it)."""
    return f"{cfg.sweep_name}-{key}"[-128:]


def request(cfg: DictConfig, key: str, out: Path, error: str | None = None) -> dict[str, Any]:
    """Everything the run needs from the job, as JSON: the run's settings and config, where the
    job's files are, and the job's error when it failed."""
    return {
        "mode": wandb_mode(cfg),
        "job_dir": str(out),
        "log_table": bool(cfg.wandb.log_table),
        "error": error,
        "init": {
            "project": cfg.wandb.project,
            "entity": cfg.wandb.entity,
            "group": cfg.wandb.group or cfg.sweep_name,
            "name": f"{cfg.model.name}-{cfg.compression.name}-{key[:6]}",
            "id": run_id(cfg, key),
            "config": {**OmegaConf.to_container(cfg, resolve=True), "key": key},
            "dir": str(Path(cfg.out_root) / cfg.sweep_name),
        },
        "init_timeout_s": float(cfg.wandb.init_timeout_s),
    }


def _flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def _init(req: dict, mode: str):
    import wandb

    Path(req["init"]["dir"]).mkdir(parents=True, exist_ok=True)
    return wandb.init(
        **req["init"],
        resume="allow",
        mode=mode,
        # No system metrics: they would sample the process that logs the run, not the job.
        settings=wandb.Settings(
            silent=True,
            console="off",
            init_timeout=req["init_timeout_s"],
            x_disable_stats=True,
        ),
    )


def start(req: dict) -> Any:
    """The job's wandb run, or None when wandb is disabled or cannot run at all; wandb's own
    console output is silenced: one line per run."""
    mode = req["mode"]
    if mode == "disabled":
        return None
    try:
        run = _init(req, mode)
    except Exception as err:  # wandb raises CommError, UsageError, timeouts, …
        if mode != "online":
            log.warning("qfeat: wandb could not start (%s); the job's files have it", one_line(err))
            return None
        log.warning(
            "qfeat: wandb online run could not start (%s); logging offline instead", one_line(err)
        )
        try:
            run = _init(req, "offline")
        except Exception as again:
            log.warning(
                "qfeat: wandb could not start (%s); the job's files have it", one_line(again)
            )
            return None
        mode = "offline"
    hint = f" (upload: wandb sync {run.dir.removesuffix('/files')})" if mode == "offline" else ""
    log.info("wandb %s run %s%s", mode, run.url if mode == "online" else run.id, hint)
    return run


def features_table(frame: pd.DataFrame):
    """The per-feature wandb.Table: what wandb.Table(dataframe=frame) logs (the same columns,
    column types and serialized cells), with cells as Python values: wandb builds it without
    indexing the frame once per cell (4 s a job) and serializes it without converting numpy
    scalars one by one (2.3 s -> 0.5 s a job)."""
    import wandb

    columns = [frame[c].tolist() for c in frame.columns]
    return wandb.Table(
        columns=list(frame.columns), data=[list(r) for r in zip(*columns, strict=True)]
    )


def log_result(run: Any, out: Path, log_table: bool = True) -> None:
    """Summary metrics (flattened), the summary.json itself and the per-feature table."""
    if run is None:
        return
    try:
        shutil.copy(out / SUMMARY_FILE, Path(run.dir) / SUMMARY_FILE)  # uploaded at finish
        record = asdict(parse_summary(json.loads((out / SUMMARY_FILE).read_text())))
        run.summary.update(
            _flat({"metrics": record["metrics"], "prediction": record["prediction"]})
        )
        if log_table:
            run.log({"features": features_table(pd.read_parquet(out / FEATURES_FILE))})
    except Exception as err:
        log.warning(
            "qfeat: wandb could not log this job's result (%s); files have it", one_line(err)
        )


def finish(run: Any, failed: bool) -> None:
    """Close the run, marked failed when the job failed."""
    if run is None:
        return
    try:
        run.finish(exit_code=1 if failed else 0)
    except Exception as err:
        log.warning("qfeat: wandb could not finish its run (%s)", one_line(err))


def log_run(req: dict) -> None:
    """The job's wandb run from its request and files: its result, or its error if it failed."""
    run = start(req)
    if run is None:
        return
    if req["error"] is None:
        log_result(run, Path(req["job_dir"]), req["log_table"])
    else:
        try:
            run.summary.update({"error": req["error"]})
        except Exception as err:
            log.warning("qfeat: wandb could not log this job's error (%s)", one_line(err))
    finish(run, failed=req["error"] is not None)
