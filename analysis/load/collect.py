"""Collect sweep results into tidy frames, validating every job against the results contract."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.load.configs import Dimensions, attach, dimensions
from analysis.load.jobfiles import JobRecord, check_features, read_job
from sweep.base.errors import one_line
from sweep.base.hooks import hook_layer
from sweep.derive.classes import class_counts
from sweep.results.columns import FEATURE_COLUMNS, OPTIONAL_COLUMNS
from sweep.results.files import JOBS_DIR
from sweep.results.summary import Prediction, Summary

log = logging.getLogger("qfeat.analysis")

# Columns that identify a job in every frame.
JOB_COLUMNS = ["sweep", "key", "model", "compression", "bits", "sparsity"]


class AnalysisError(Exception):
    """A user-facing analysis error, printed by the CLI as one line."""


@dataclass
class Collection:
    """Everything analysis needs: tidy frames, raw summaries and what was skipped (and why)."""

    jobs: pd.DataFrame
    per_sae: pd.DataFrame
    features: pd.DataFrame
    skipped: pd.DataFrame
    summaries: dict[str, Summary] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    dirs: dict[str, Path] = field(default_factory=dict)  # "sweep/key" -> job directory
    dims: Dimensions = field(default_factory=lambda: dimensions({}))


def top_predictor(prediction: Prediction | None) -> tuple[str | None, float, str | None]:
    """The predictor with the largest direction-free marginal AUC: (name, auc_abs, sign)."""
    marginal = (prediction.marginal if prediction is not None else None) or {}
    scored = [(v.auc_abs, k, v.sign) for k, v in marginal.items()]
    scored = [s for s in scored if s[0] is not None and np.isfinite(s[0])]
    if not scored:
        return None, float("nan"), None
    auc, name, sign = max(scored)
    return name, float(auc), sign


def _job_row(rec: JobRecord) -> dict[str, Any]:
    s = rec.summary
    row: dict[str, Any] = {
        "sweep": rec.sweep,
        "key": s.key,
        "model": s.model,
        "compression": s.compression,
        "bits": s.bits,
        "sparsity": s.metrics.sparsity,
        "saes": ",".join(s.saes),
        "device": s.device,
        "git_commit": s.git_commit,
        "wall_time_s": s.wall_time_s,
    }
    row.update({k: v for k, v in asdict(s.metrics).items() if k not in row})
    row["reference_key"] = s.reference.key
    matched = s.matched
    row["matched_baseline"] = matched.baseline_method if matched else None
    row["matched_converged"] = matched.search.converged if matched else None
    row["matched_rel_error"] = matched.search.rel_error if matched else None
    overlap = asdict(matched.overlap) if matched else {}
    for k in ("jaccard", "spearman", "n_damaged_a", "n_damaged_b", "n_common_active"):
        row[f"overlap_{k}"] = overlap.get(k, np.nan)
    u = s.uncertainty
    row["settled"] = u.settled if u else None
    row["settle_note"] = u.settle_note if u else None
    return row


def _per_sae_rows(rec: JobRecord) -> list[dict[str, Any]]:
    s = rec.summary
    base = {c: v for c, v in _job_row(rec).items() if c in JOB_COLUMNS}
    rows = []
    for hook, part in rec.features.groupby("sae", sort=False):
        fractions = s.per_sae.get(hook)
        counts = asdict(fractions) if fractions is not None else class_counts(part)
        pred = s.prediction.get(hook)
        name, auc_abs, sign = top_predictor(pred)
        tokens = s.uncertainty.per_sae.get(hook) if s.uncertainty else None
        estimable = pred is not None and pred.estimable
        rows.append(
            {
                **base,
                "sae": hook,
                "layer": hook_layer(str(hook)),
                **counts,
                "cv_auc": pred.auc if estimable else np.nan,
                "cv_auc_std": pred.fold_auc_std if estimable else np.nan,
                "prediction_reason": pred.reason if pred is not None else None,
                "top_predictor": name,
                "top_predictor_auc": auc_abs,
                "top_predictor_sign": sign,
                "token_survived_lo": tokens.frac_survived_lo if tokens else np.nan,
                "token_survived_hi": tokens.frac_survived_hi if tokens else np.nan,
            }
        )
    return rows


def watchlist(summary: Summary) -> list[int]:
    """The job's `survival.watch` feature ids (in every SAE), [] if none or not recorded."""
    watch = (summary.config.get("survival") or {}).get("watch") or []
    return [int(f) for f in watch] if isinstance(watch, list) else []


def _rows(rec: JobRecord) -> tuple[dict[str, Any], list[dict[str, Any]], pd.DataFrame]:
    """A valid record's job row, per-SAE rows and tagged features frame."""
    s = rec.summary
    present = [c for c in FEATURE_COLUMNS if c not in OPTIONAL_COLUMNS or c in rec.features]
    frame = rec.features[present].copy()
    frame = frame.assign(
        sweep=rec.sweep,
        key=s.key,
        model=s.model,
        compression=s.compression,
        bits=s.bits,
        sparsity=s.metrics.sparsity,
        watched=rec.features["feature"].isin(watchlist(s)),
    )
    return _job_row(rec), _per_sae_rows(rec), frame.astype({"sae": "string", "class": "string"})


def build(
    records: list[JobRecord], skipped: list[dict[str, str]], sources: list[str]
) -> Collection:
    """Validate records and assemble the tidy frames; invalid records join `skipped`."""
    good, jobs, per_sae, parts = [], [], [], []
    for rec in records:
        reason = check_features(rec.features)
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
    for row in skipped:
        log.warning("skipped %s: %s", row["job"], row["reason"])
    if not good:
        listed = "; ".join(f"{Path(r['job']).name}: {r['reason']}" for r in skipped)
        raise AnalysisError(
            f"no readable job is left in {', '.join(sources)}: all {len(skipped)} were "
            f"skipped ({listed})"
        )
    summaries = {f"{r.sweep}/{r.summary.key}": r.summary for r in good}
    dims = dimensions(summaries)
    jobs, per_sae = attach(pd.DataFrame(jobs), dims), attach(pd.DataFrame(per_sae), dims)
    features = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(features):
        features["layer"] = features["sae"].map(lambda h: hook_layer(str(h)))
        features = features.reindex(columns=[*features.columns, *_absent(features)])
        features["uncertain"] = features["uncertain"].astype("boolean").fillna(False).astype(bool)
    sort = ["sweep", "model", "compression", "bits"]
    if len(jobs):
        jobs = jobs.sort_values([*sort, "extras"], kind="stable", ignore_index=True)
        per_sae = per_sae.sort_values([*sort, "extras", "sae"], kind="stable", ignore_index=True)
    dirs = {f"{r.sweep}/{r.summary.key}": Path(r.source) for r in good}
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
    """Optional feature columns no collected job wrote (added as NaN so every frame has them;
    `uncertain` as False: without an interval nothing is flagged)."""
    return [c for c in OPTIONAL_COLUMNS if c not in features.columns]


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
    return out
