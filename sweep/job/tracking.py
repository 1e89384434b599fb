"""wandb logging of one job: config, summary metrics and the per-feature table.

Local result files are the truth; wandb is a view of them, and a wandb failure never costs a
result: an online run that cannot start (no network, no login) falls back to an offline run
(`wandb sync` uploads it later) with one warning, and a failure while logging or finishing is
one warning too. Offline by default (no account needed), `wandb.mode=disabled` in tests.
"""

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.base.errors import one_line
from sweep.config.validate import wandb_mode
from sweep.results.files import SUMMARY_FILE
from sweep.results.summary import Summary

log = logging.getLogger("qfeat")


def _flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def _init(cfg: DictConfig, key: str, mode: str):
    import wandb

    directory = Path(cfg.out_root) / cfg.sweep_name
    directory.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        group=cfg.wandb.group or cfg.sweep_name,
        name=f"{cfg.model.name}-{cfg.compression.name}-{key[:6]}",
        id=f"{cfg.sweep_name}-{key}"[-128:],
        resume="allow",
        config={**OmegaConf.to_container(cfg, resolve=True), "key": key},
        mode=mode,
        dir=str(directory),
        settings=wandb.Settings(silent=True, console="off", init_timeout=cfg.wandb.init_timeout_s),
    )


def start(cfg: DictConfig, key: str) -> Any:
    """A wandb run grouped by sweep, or None when wandb is disabled or cannot run at all;
    wandb's own console output is silenced: qfeat logs one line per run."""
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None
    try:
        run = _init(cfg, key, mode)
    except Exception as err:  # wandb raises CommError, UsageError, timeouts, …
        if mode != "online":
            log.warning(
                "qfeat: wandb could not start (%s); this job logs to files only", one_line(err)
            )
            return None
        log.warning(
            "qfeat: wandb online run could not start (%s); logging offline instead", one_line(err)
        )
        return start_offline(cfg, key)
    _announce(run, mode)
    return run


def start_offline(cfg: DictConfig, key: str) -> Any:
    """The fallback of a failed online run: an offline one, or None when that fails too."""
    try:
        run = _init(cfg, key, "offline")
    except Exception as err:
        log.warning("qfeat: wandb could not start (%s); this job logs to files only", one_line(err))
        return None
    _announce(run, "offline")
    return run


def _announce(run: Any, mode: str) -> None:
    hint = (
        f" (upload later: wandb sync {run.dir.removesuffix('/files')})" if mode == "offline" else ""
    )
    log.info("wandb %s run %s%s", mode, run.url if mode == "online" else run.id, hint)


def log_result(
    run: Any, summary: Summary, frame: pd.DataFrame, out: Path, log_table: bool = True
) -> None:
    """Summary metrics (flattened), the summary.json itself and the per-feature table."""
    if run is None:
        return
    try:
        import wandb

        shutil.copy(out / SUMMARY_FILE, Path(run.dir) / SUMMARY_FILE)  # uploaded at finish
        record = asdict(summary)
        run.summary.update(
            _flat({"metrics": record["metrics"], "prediction": record["prediction"]})
        )
        if log_table:
            run.log({"features": wandb.Table(dataframe=frame)})
    except Exception as err:
        log.warning(
            "qfeat: wandb could not log this job's result (%s); files have it", one_line(err)
        )


def finish(run: Any, failed: bool) -> None:
    """Close the run (always called, so a crash never leaves it open)."""
    if run is None:
        return
    try:
        run.finish(exit_code=1 if failed else 0)
    except Exception as err:
        log.warning("qfeat: wandb could not finish its run (%s)", one_line(err))


@contextmanager
def session(cfg: DictConfig, key: str) -> Iterator[Any]:
    """Start a run and always finish it, marking it failed if the job raised."""
    run = start(cfg, key)
    try:
        yield run
    except BaseException:
        finish(run, failed=True)
        raise
    finish(run, failed=False)
