"""Damage overlap between two finished jobs, computed from their features.parquet files alone."""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.load.collect import Collection
from analysis.load.configs import canon, column
from sweep.derive.overlap import damage_overlap
from sweep.results.files import FEATURES_FILE
from sweep.results.summary import Overlap


def overlap_of_jobs(job_a: Path, job_b: Path) -> Overlap:
    """Jaccard of damaged sets and Spearman of damage between two job directories."""
    a = pd.read_parquet(Path(job_a) / FEATURES_FILE)
    b = pd.read_parquet(Path(job_b) / FEATURES_FILE)
    return damage_overlap(a, b)


def paired_damage(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Damage of the features active in both frames, side by side (damage_a, damage_b)."""
    cols = ["sae", "feature", "active", "damage", "class"]
    m = a[cols].merge(b[cols], on=["sae", "feature"], suffixes=("_a", "_b"), validate="one_to_one")
    return m[m["active_a"].astype(bool) & m["active_b"].astype(bool)].reset_index(drop=True)


BASELINE = "compression.baseline."


def matched_pairs(
    jobs: pd.DataFrame, config: Sequence[str] = ()
) -> list[tuple[pd.Series, pd.Series | None]]:
    """Each matched-pruning job with the sweep's job of its baseline method at the same bits.

    The partner must share sweep, model, SAEs, bits, the FP reference key (same tokens and FP
    model) and every varying config key in `config` outside `compression`; its compression
    options must be the matched job's baseline options (compression.X = compression.baseline.X),
    so its features are the baseline model the matched job compared against; None when no job
    or several jobs qualify.
    """
    if "matched_baseline" not in jobs or "sparsity" not in jobs:
        return []
    matched = jobs[jobs["compression"].astype(str).str.endswith("_matched")]
    shared = [column(k) for k in config if not k.startswith("compression.")]
    same_cols = [(c, c) for c in ["sweep", "model", "saes", "bits", *shared]]
    same_cols += [
        (column("compression." + k[len(BASELINE) :]), column(k))
        for k in config
        if k.startswith(BASELINE) and column("compression." + k[len(BASELINE) :]) in jobs
    ]
    pairs = []
    for _, job in matched.iterrows():
        same = jobs[jobs["compression"] == job["matched_baseline"]]
        for theirs, mine in same_cols:
            same = same[same[theirs].map(canon) == canon(job[mine])]
        if job.get("reference_key") is not None:
            same = same[same["reference_key"] == job["reference_key"]]
        pairs.append((job, same.iloc[0] if len(same) == 1 else None))
    return pairs


def overlap_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per matched job: its sparsity, search outcome and the overlap its summary records."""
    matched = jobs[jobs["matched_baseline"].notna()] if "matched_baseline" in jobs else jobs[:0]
    rows = [
        {
            "sweep": job["sweep"],
            "key": job["key"],
            "extras": job.get("extras", ""),
            "model": job["model"],
            "saes": job["saes"],
            "bits": job["bits"],
            "baseline": job["matched_baseline"],
            "matched_sparsity": job["sparsity"],
            "converged": job.get("matched_converged"),
            "jaccard": job["overlap_jaccard"],
            "spearman": job["overlap_spearman"],
            "n_damaged_baseline": job["overlap_n_damaged_a"],
            "n_damaged_pruned": job["overlap_n_damaged_b"],
        }
        for _, job in matched.iterrows()
    ]
    return pd.DataFrame(rows)


def job_name(job: pd.Series | dict, compression: dict, sweeps: int = 1) -> str:
    """A job's short name in an overlap matrix: its method (a noise control as `noise≈` the
    method it matches, with that method's sparsity), its other varying options, bits and
    measured sparsity."""
    match = compression.get("match") or {}
    parts = [f"{job['compression']}≈{match['name']}" if match else str(job["compression"])]
    extras = str(job.get("extras") or "").split()
    if match:  # the matched method's options are in its name; its sparsity is shown below
        extras = [e for e in extras if not e.startswith(("match", "sparsity="))]
    parts += extras
    if not pd.isna(job.get("bits")):
        parts.append(f"{int(job['bits'])}b")
    sparsity = job.get("sparsity")
    if pd.isna(sparsity) and match.get("sparsity") is not None:
        sparsity = match["sparsity"]
    if not pd.isna(sparsity):
        parts.append(f"s={float(sparsity):.2f}")
    if sweeps > 1:
        parts.insert(0, str(job["sweep"]))
    return " ".join(parts)


def overlap_groups(jobs: pd.DataFrame) -> list[pd.DataFrame]:
    """The jobs measured against the same FP reference (same model, SAEs and tokens), in
    groups of two or more, each in the collection's order."""
    if "reference_key" not in jobs:
        return []
    return [g for _, g in jobs.groupby("reference_key", sort=False) if len(g) >= 2]


def pairwise_overlap(col: Collection) -> pd.DataFrame:
    """Jaccard of damaged sets and Spearman of damage for every pair of jobs sharing an FP
    reference, one row per ordered pair (both orders and the diagonal: a matrix's cells)."""
    rows, features = [], col.features
    for group in overlap_groups(col.jobs):
        frames = {
            (j["sweep"], j["key"]): features[
                (features["sweep"] == j["sweep"]) & (features["key"] == j["key"])
            ]
            for _, j in group.iterrows()
        }
        names = {
            (j["sweep"], j["key"]): job_name(
                j,
                col.summaries[f"{j['sweep']}/{j['key']}"].config.get("compression") or {},
                col.dims.sweeps,
            )
            for _, j in group.iterrows()
        }
        for a in frames:
            for b in frames:
                o = damage_overlap(frames[a], frames[b])
                rows.append(
                    {
                        "reference_key": group["reference_key"].iloc[0],
                        "model": group["model"].iloc[0],
                        "saes": group["saes"].iloc[0],
                        "job_a": names[a],
                        "job_b": names[b],
                        "key_a": a[1],
                        "key_b": b[1],
                        "n_damaged_a": o.n_damaged_a,
                        "n_damaged_b": o.n_damaged_b,
                        "n_damaged_both": o.n_damaged_both,
                        "jaccard": o.jaccard,
                        "spearman": o.spearman,
                        "n_common_active": o.n_common_active,
                    }
                )
    return pd.DataFrame(rows)
