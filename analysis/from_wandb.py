"""Load the same Collection from a wandb project (runs of one group), without the result files.

Each qfeat job logs run.config (resolved config + key), run.summary (flattened `metrics/…` and
`prediction/<hook>/…`) and a `features` wandb.Table. wandb flattening drops lists (ROC points,
fold AUCs) and the `matched` block, so those figures fall back to what the features allow
(e.g. overlap is recomputed from the paired RTN job's table).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.collect import Collection, build
from analysis.jobfiles import JobRecord
from sweep.constants import FEATURE_COLUMNS

log = logging.getLogger("qfeat.analysis")
TABLE_KEY = "features"


def unflatten(flat: dict[str, Any], prefix: str) -> dict[str, Any]:
    """{'metrics/a': 1, 'prediction/h/auc': 2} → nested dict of the keys under `prefix/`."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if not key.startswith(prefix + "/"):
            continue
        node = out
        *parents, leaf = key[len(prefix) + 1 :].split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def coerce_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast a table's JSON-typed columns back to the FEATURE_COLUMNS dtypes where possible."""
    out = frame.copy()
    for name, (dtype, _) in FEATURE_COLUMNS.items():
        if name not in out:
            continue
        if dtype == "float64":
            out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        elif dtype == "string":
            out[name] = out[name].astype("string")
        else:
            # left as is when it fails: validation then reports the wrong dtype
            with contextlib.suppress(TypeError, ValueError):
                out[name] = out[name].astype(dtype)
    return out


def _table_from_json(payload: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(payload["data"], columns=payload["columns"])


def features_of(run: Any, workdir: Path) -> pd.DataFrame:
    """The run's logged features table: its summary's table file, else the run_table artifact."""
    ref = run.summary.get(TABLE_KEY)
    if isinstance(ref, dict) and ref.get("path"):
        handle = run.file(ref["path"]).download(root=str(workdir), replace=True)
        name = getattr(handle, "name", None) or str(workdir / ref["path"])
        handle.close() if hasattr(handle, "close") else None
        return _table_from_json(json.loads(Path(name).read_text()))
    for art in run.logged_artifacts():
        if art.type == "run_table" and TABLE_KEY in art.name:
            return art.get(TABLE_KEY).get_dataframe()
    raise LookupError(f"run {run.id} has no logged '{TABLE_KEY}' table")


def summary_of(run: Any, features: pd.DataFrame) -> dict[str, Any]:
    """A summary.json-shaped dict rebuilt from run.config and the flattened run.summary."""
    cfg = dict(run.config)
    flat = {k: v for k, v in dict(run.summary).items() if not k.startswith("_")}
    saes = list(dict.fromkeys(features["sae"].astype(str))) if "sae" in features else []
    return {
        "key": cfg.get("key", run.id),
        "status": "complete" if getattr(run, "state", "finished") == "finished" else run.state,
        "created": getattr(run, "created_at", None),
        "model": (cfg.get("model") or {}).get("name"),
        "saes": saes,
        "compression": (cfg.get("compression") or {}).get("name"),
        "bits": cfg.get("bits"),
        "config": {k: v for k, v in cfg.items() if k != "key"},
        "metrics": unflatten(flat, "metrics"),
        "prediction": unflatten(flat, "prediction"),
        "matched": None,
        "source": f"wandb:{'/'.join(run.path)}",
    }


def load_wandb(project: str, group: str, entity: str | None = None, api: Any = None) -> Collection:
    """Collect every run of `group` in `project` (wandb.Api() unless a client is passed)."""
    if api is None:
        import wandb

        api = wandb.Api()
    path = f"{entity}/{project}" if entity else project
    records: list[JobRecord] = []
    skipped: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="qfeat-wandb-") as tmp:
        for run in api.runs(path, filters={"group": group}):
            source = f"wandb:{'/'.join(run.path)}"
            try:
                features = coerce_features(features_of(run, Path(tmp) / run.id))
            except Exception as err:  # a broken run is skipped, as a broken job dir is
                skipped.append({"sweep": group, "job": source, "reason": f"{err}"})
                continue
            records.append(JobRecord(group, source, summary_of(run, features), features))
    col = build(records, skipped, [f"wandb:{path}/{group}"])
    log.info(
        "collect (wandb %s, group %s): %d jobs, %d skipped",
        path,
        group,
        len(col.jobs),
        len(col.skipped),
    )
    return col
