"""Collect sweep results into tidy frames, validating every job against the results contract."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.configs import Dimensions, attach, dimensions
from analysis.jobfiles import JobRecord, check_features, check_summary, one_line, read_job
from sweep.constants import CLASSES, FEATURE_COLUMNS, FIDELITY_COLUMNS, JOBS_DIR

log = logging.getLogger("qfeat.analysis")

# Columns that identify a job in every frame.
JOB_COLUMNS = ["sweep", "key", "model", "compression", "bits", "sparsity"]
_LAYER = re.compile(r"blocks\.(\d+)\.")
# Per-feature columns newer jobs add (steering/ablation fidelity): NaN for jobs written before.
OPTIONAL_FEATURE_COLUMNS = FIDELITY_COLUMNS


class AnalysisError(Exception):
    """A user-facing analysis error, printed by the CLI as one line."""


@dataclass
class Collection:
    """Everything analysis needs: tidy frames, raw summaries and what was skipped (and why)."""

    jobs: pd.DataFrame
    per_sae: pd.DataFrame
    features: pd.DataFrame
    skipped: pd.DataFrame
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    dirs: dict[str, Path] = field(default_factory=dict)  # "sweep/key" -> job directory
    dims: Dimensions = field(default_factory=lambda: dimensions({}))


def layer_of(hook: str) -> int | None:
    """The block index in a TransformerLens hook name such as blocks.2.hook_resid_post."""
    m = _LAYER.search(hook)
    return int(m.group(1)) if m else None


def _class_fractions(frame: pd.DataFrame) -> dict[str, float | int]:
    """Active count and class fractions of one SAE's features (as sweep.survival computes)."""
    active = frame[frame["active"].astype(bool)]
    n = len(active)
    out: dict[str, float | int] = {"n_features": len(frame), "n_active": n}
    for name in CLASSES:
        count = int((active["class"] == name).sum())
        out[f"n_{name}"], out[f"frac_{name}"] = count, count / n if n else float("nan")
    out["n_silenced"] = int(active["silenced"].sum())
    out["mean_r"] = float(active["r"].mean()) if n else float("nan")
    return out


def top_predictor(prediction: dict | None) -> tuple[str | None, float, str | None]:
    """The predictor with the largest direction-free marginal AUC: (name, auc_abs, sign)."""
    marginal = (prediction or {}).get("marginal") or {}
    scored = [(v.get("auc_abs"), k, v.get("sign")) for k, v in marginal.items()]
    scored = [s for s in scored if s[0] is not None and np.isfinite(s[0])]
    if not scored:
        return None, float("nan"), None
    auc, name, sign = max(scored)
    return name, float(auc), sign


def _job_row(rec: JobRecord) -> dict[str, Any]:
    s = rec.summary
    m = s["metrics"]
    row: dict[str, Any] = {
        "sweep": rec.sweep,
        "key": s["key"],
        "model": s["model"],
        "compression": s["compression"],
        "bits": int(s["bits"]),
        "sparsity": m.get("sparsity"),
        "saes": ",".join(s["saes"]),
        "device": s.get("device"),
        "git_commit": s.get("git_commit"),
        "wall_time_s": s.get("wall_time_s"),
    }
    row.update({k: v for k, v in m.items() if k not in row and not isinstance(v, dict | list)})
    overlap = ((s.get("matched") or {}).get("overlap")) or {}
    search = ((s.get("matched") or {}).get("search")) or {}
    row["reference_key"] = (s.get("reference") or {}).get("key")
    row["matched_reference"] = (s.get("matched") or {}).get("reference_method")
    row["matched_converged"] = search.get("converged")
    row["matched_rel_error"] = search.get("rel_error")
    for k in ("jaccard", "spearman", "n_damaged_a", "n_damaged_b", "n_common_active"):
        row[f"overlap_{k}"] = overlap.get(k, np.nan)
    return row


def _per_sae_rows(rec: JobRecord) -> list[dict[str, Any]]:
    s = rec.summary
    base = {c: v for c, v in _job_row(rec).items() if c in JOB_COLUMNS}
    rows = []
    for hook, part in rec.features.groupby("sae", sort=False):
        fractions = (s.get("per_sae") or {}).get(hook) or _class_fractions(part)
        pred = (s.get("prediction") or {}).get(hook) or {}
        name, auc_abs, sign = top_predictor(pred)
        rows.append(
            {
                **base,
                "sae": hook,
                "layer": layer_of(str(hook)),
                **{k: v for k, v in fractions.items() if not isinstance(v, dict | list)},
                "cv_auc": pred.get("auc", np.nan) if pred.get("estimable") else np.nan,
                "cv_auc_std": pred.get("fold_auc_std", np.nan),
                "prediction_reason": pred.get("reason"),
                "top_predictor": name,
                "top_predictor_auc": auc_abs,
                "top_predictor_sign": sign,
            }
        )
    return rows


def watchlist(summary: dict[str, Any]) -> list[int]:
    """The job's `survival.watch` feature ids (in every SAE), [] if none or not recorded."""
    watch = ((summary.get("config") or {}).get("survival") or {}).get("watch") or []
    return [int(f) for f in watch] if isinstance(watch, list) else []


def _rows(rec: JobRecord) -> tuple[dict[str, Any], list[dict[str, Any]], pd.DataFrame]:
    """A valid record's job row, per-SAE rows and tagged features frame."""
    s = rec.summary
    present = [c for c in FEATURE_COLUMNS if c not in FIDELITY_COLUMNS or c in rec.features]
    frame = rec.features[present].copy()
    frame = frame.assign(
        sweep=rec.sweep,
        key=s["key"],
        model=s["model"],
        compression=s["compression"],
        bits=int(s["bits"]),
        sparsity=s["metrics"].get("sparsity"),
        watched=rec.features["feature"].isin(watchlist(s)),
    )
    return _job_row(rec), _per_sae_rows(rec), frame.astype({"sae": "string", "class": "string"})


def build(
    records: list[JobRecord], skipped: list[dict[str, str]], sources: list[str]
) -> Collection:
    """Validate records and assemble the tidy frames; invalid records join `skipped`."""
    good, jobs, per_sae, parts = [], [], [], []
    for rec in records:
        reason = check_summary(rec.summary) or check_features(rec.features)
        if not reason:
            try:
                job, sae_rows, frame = _rows(rec)
            except (AttributeError, KeyError, TypeError, ValueError) as err:
                reason = f"malformed result: {type(err).__name__}: {err}"
        if reason:
            skipped.append({"sweep": rec.sweep, "job": rec.source, "reason": one_line(reason)})
            continue
        good.append(rec)
        jobs.append(job)
        per_sae.extend(sae_rows)
        parts.append(frame)
    summaries = {f"{r.sweep}/{r.summary['key']}": r.summary for r in good}
    dims = dimensions(summaries)
    jobs, per_sae = attach(pd.DataFrame(jobs), dims), attach(pd.DataFrame(per_sae), dims)
    features = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(features):
        features["layer"] = features["sae"].map(lambda h: layer_of(str(h)))
        features = features.reindex(columns=[*features.columns, *_absent(features)])
    sort = ["sweep", "model", "compression", "bits"]
    if len(jobs):
        jobs = jobs.sort_values([*sort, "extras"], kind="stable", ignore_index=True)
        per_sae = per_sae.sort_values([*sort, "extras", "sae"], kind="stable", ignore_index=True)
    dirs = {f"{r.sweep}/{r.summary['key']}": Path(r.source) for r in good}
    return Collection(
        jobs=jobs,
        per_sae=per_sae,
        features=features,
        skipped=pd.DataFrame(skipped, columns=["sweep", "job", "reason"]),
        summaries=summaries,
        sources=sources,
        dims=dims,
        dirs={k: d for k, d in dirs.items() if d.is_dir()},
    )


def _absent(features: pd.DataFrame) -> list[str]:
    """Optional feature columns no collected job wrote (added as NaN so every frame has them)."""
    return [c for c in OPTIONAL_FEATURE_COLUMNS if c not in features.columns]


def collect(sweep_dirs: list[Path | str]) -> Collection:
    """Read every job under each sweep directory's jobs/ folder into one Collection."""
    records: list[JobRecord] = []
    skipped: list[dict[str, str]] = []
    for raw in sweep_dirs:
        root = Path(raw)
        if root.name == JOBS_DIR and not (root / JOBS_DIR).is_dir():
            root = root.parent
        if not root.is_dir():
            raise AnalysisError(f"sweep directory {root} does not exist")
        jobs_dir = root / JOBS_DIR
        job_dirs = sorted(p for p in jobs_dir.iterdir() if p.is_dir()) if jobs_dir.is_dir() else []
        if not job_dirs:
            raise AnalysisError(f"no job results in {root} (expected {root / JOBS_DIR}/<key>/)")
        for directory in job_dirs:
            rec, reason = read_job(directory, root.name)
            if rec is None:
                skipped.append({"sweep": root.name, "job": str(directory), "reason": reason})
            else:
                records.append(rec)
    out = build(records, skipped, [str(Path(p)) for p in sweep_dirs])
    log.info(
        "collect: %d jobs, %d skipped, from %d sweep(s)",
        len(out.jobs),
        len(skipped),
        len(sweep_dirs),
    )
    for row in out.skipped.itertuples():
        log.warning("skipped %s: %s", row.job, row.reason)
    return out
