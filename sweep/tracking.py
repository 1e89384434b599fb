"""wandb logging of one job: config, summary metrics and the per-feature table.

Local result files stay the source of truth; wandb is a view of them. Offline by default (no
account needed; `wandb sync` later), `wandb.mode=disabled` in tests, `online` after login.
"""

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.errors import QfeatError

log = logging.getLogger("qfeat")


def _flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f"{prefix}{key}"] = value
    return out


WANDB_MODES = ("online", "offline", "disabled")


def wandb_mode(cfg: DictConfig) -> str:
    """WANDB_MODE from the environment wins over `wandb.mode`, as wandb users expect."""
    mode = os.environ.get("WANDB_MODE") or cfg.wandb.mode
    if mode == "dryrun":  # wandb's old name for offline
        mode = "offline"
    if mode not in WANDB_MODES:
        source = "WANDB_MODE" if os.environ.get("WANDB_MODE") else "wandb.mode"
        raise QfeatError(f"{source}={mode!r}; use {', '.join(WANDB_MODES)}")
    return mode


def start(cfg: DictConfig, key: str):
    """A wandb run grouped by sweep, or None when wandb is disabled; wandb's own console
    output (banners, run summaries) is silenced: qfeat logs one line per run."""
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None
    import wandb

    directory = Path(cfg.out_root) / cfg.sweep_name
    directory.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        group=cfg.wandb.group or cfg.sweep_name,
        name=f"{cfg.model.name}-{cfg.compression.name}-b{cfg.bits}-{key[:6]}",
        id=f"{cfg.sweep_name}-{key}"[-128:],
        resume="allow",
        config={**OmegaConf.to_container(cfg, resolve=True), "key": key},
        mode=mode,
        dir=str(directory),
        settings=wandb.Settings(silent=True, console="off"),
    )
    hint = (
        f" (upload later: wandb sync {run.dir.removesuffix('/files')})" if mode == "offline" else ""
    )
    log.info("wandb %s run %s%s", mode, run.url if mode == "online" else run.id, hint)
    return run


def log_result(
    run, summary: dict, frame: pd.DataFrame, summary_file: Path, log_table: bool = True
) -> None:
    """Summary metrics (flattened), the summary.json itself and the per-feature table."""
    if run is None:
        return
    import wandb

    shutil.copy(summary_file, Path(run.dir) / summary_file.name)  # run.dir is uploaded at finish
    run.summary.update(
        _flat({"metrics": summary["metrics"], "prediction": summary.get("prediction") or {}})
    )
    if log_table:
        run.log({"features": wandb.Table(dataframe=frame)})


def finish(run, failed: bool) -> None:
    """Close the run (always called, so a crash never leaves it open)."""
    if run is not None:
        run.finish(exit_code=1 if failed else 0)


@contextmanager
def session(cfg: DictConfig, key: str) -> Iterator:
    """Start a run and always finish it, marking it failed if the job raised."""
    run = start(cfg, key)
    try:
        yield run
    except BaseException:
        finish(run, failed=True)
        raise
    finish(run, failed=False)
