"""Load the same Collection from a wandb project (runs of one group), without the result files.

Each qfeat job uploads its summary.json as a run file and logs a `features` wandb.Table; the
summary is read back through the results contract (sweep.results.summary), exactly as from a
job directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.load.collect import Collection, build
from analysis.load.jobfiles import JobRecord
from sweep.base.errors import one_line
from sweep.results.columns import FEATURE_COLUMNS
from sweep.results.files import SUMMARY_FILE
from sweep.results.summary import Summary, parse_summary

log = logging.getLogger("qfeat.analysis")
TABLE_KEY = "features"


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


def _download(run: Any, path: str, workdir: Path) -> Path:
    handle = run.file(path).download(root=str(workdir), replace=True)
    name = getattr(handle, "name", None) or str(workdir / path)
    handle.close() if hasattr(handle, "close") else None
    return Path(name)


def features_of(run: Any, workdir: Path) -> pd.DataFrame:
    """The run's logged features table: its summary's table file, else the run_table artifact."""
    ref = run.summary.get(TABLE_KEY)
    if isinstance(ref, dict) and ref.get("path"):
        payload = json.loads(_download(run, ref["path"], workdir).read_text())
        return pd.DataFrame(payload["data"], columns=payload["columns"])
    for art in run.logged_artifacts():
        if art.type == "run_table" and TABLE_KEY in art.name:
            return art.get(TABLE_KEY).get_dataframe()
    raise LookupError(f"run {run.id} has no logged '{TABLE_KEY}' table")


def summary_of(run: Any, workdir: Path) -> Summary:
    """The run's uploaded summary.json, checked against the results contract."""
    try:
        payload = json.loads(_download(run, SUMMARY_FILE, workdir).read_text())
    except (OSError, ValueError) as err:
        raise LookupError(f"run {run.id} has no readable {SUMMARY_FILE}: {err}") from err
    return parse_summary(payload)


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
            workdir = Path(tmp) / run.id
            try:
                summary = summary_of(run, workdir)
                features = coerce_features(features_of(run, workdir))
            except Exception as err:  # a broken run is skipped, as a broken job dir is
                skipped.append({"sweep": group, "job": source, "reason": one_line(err)})
                continue
            records.append(JobRecord(group, source, summary, features))
    col = build(records, skipped, [f"wandb:{path}/{group}"])
    log.info(
        "collect (wandb %s, group %s): %d jobs, %d skipped",
        path,
        group,
        len(col.jobs),
        len(col.skipped),
    )
    return col
