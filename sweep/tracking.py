"""wandb logging of one job: config, summary metrics and the per-feature table.

Local result files stay the source of truth; wandb is a view of them. Offline by default (no
account needed; `wandb sync` later), `wandb.mode=disabled` in tests, `online` after login.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf


def _flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def start(cfg: DictConfig, key: str):
    """A wandb run grouped by sweep, or None when wandb.mode=disabled."""
    if cfg.wandb.mode == "disabled":
        return None
    import wandb

    directory = Path(cfg.out_root) / cfg.sweep_name
    directory.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        group=cfg.wandb.group or cfg.sweep_name,
        name=f"{cfg.model.name}-{cfg.compression.name}-b{cfg.bits}-{key[:6]}",
        id=f"{cfg.sweep_name}-{key}"[-128:],
        resume="allow",
        config={**OmegaConf.to_container(cfg, resolve=True), "key": key},
        mode=cfg.wandb.mode,
        dir=str(directory),
    )


def log_result(
    run, summary: dict, frame: pd.DataFrame, summary_file: Path, log_table: bool = True
) -> None:
    """Summary metrics (flattened), the summary.json itself and the per-feature table."""
    if run is None:
        return
    import wandb

    run.save(str(summary_file), base_path=str(summary_file.parent), policy="now")
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
